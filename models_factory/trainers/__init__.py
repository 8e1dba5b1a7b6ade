"""Django-free training core: classifier and LoRA trainers, shared loop, checkpoints, offline base models.

A Celery task calls one trainer with plain Python data and a callbacks object, and stores the `TrainResult`.
"""

from models_factory.trainers.classifier import ClassifierTrainer
from models_factory.trainers.common import Callbacks, NullCallbacks, TrainConfig, TrainResult, set_seed
from models_factory.trainers.device import choose_device, configure_threads
from models_factory.trainers.errors import (
    BaseModelError,
    Cancelled,
    ConfigError,
    DataError,
    InputError,
    TrainerError,
    TrainingFailed,
)
from models_factory.trainers.generative import LoRATrainer

__all__ = [
    "BaseModelError",
    "Callbacks",
    "Cancelled",
    "ClassifierTrainer",
    "ConfigError",
    "DataError",
    "InputError",
    "LoRATrainer",
    "NullCallbacks",
    "TrainConfig",
    "TrainResult",
    "TrainerError",
    "TrainingFailed",
    "choose_device",
    "configure_threads",
    "set_seed",
]
