"""The Model Factory's writes, one module per capability; views, the API, tasks and commands call these.

- ``training``: models on a visible Datanet, training runs (queue, run, cancel) and registering versions.
- ``inference``: deploying a version and paid inference.

Apps to the right (attribution) act on registered versions and paid inferences through ``models_factory.hooks``.
"""

from models_factory.services.inference import MAX_INPUT_CHARS, below_majority_reason, infer, version_deploy
from models_factory.services.training import (
    CLASSIFIER_BASES,
    CLASSIFIER_KINDS,
    GENERATIVE_BASES,
    GENERATIVE_KINDS,
    checkpoints_dir,
    code_revision,
    model_create,
    model_zips_expire,
    models_dir,
    training_run_cancel,
    training_run_create,
    training_run_execute,
)

__all__ = [
    "CLASSIFIER_BASES",
    "CLASSIFIER_KINDS",
    "GENERATIVE_BASES",
    "GENERATIVE_KINDS",
    "MAX_INPUT_CHARS",
    "below_majority_reason",
    "checkpoints_dir",
    "model_zips_expire",
    "code_revision",
    "infer",
    "model_create",
    "models_dir",
    "training_run_cancel",
    "training_run_create",
    "training_run_execute",
    "version_deploy",
]
