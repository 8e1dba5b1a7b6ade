"""Errors a training or serving caller can catch and show to a user as they are."""


class TrainerError(Exception):
    """Base class: the message is written for the person who started the run."""


class ConfigError(TrainerError):
    """A hyperparameter or option is out of range or unknown."""


class DataError(TrainerError):
    """The training data cannot make a model (too few records, one label, empty texts...)."""


class BaseModelError(TrainerError):
    """The base model named for a run cannot be found or is not a model."""


class TrainingFailed(TrainerError):
    """The run stopped for a reason other than the user (out of memory, numerical blow-up)."""


class Cancelled(TrainerError):
    """The caller asked the run to stop; no artifact was written."""


class InputError(TrainerError):
    """An inference input is empty, too long or otherwise unusable."""
