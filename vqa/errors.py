"""Exceptions raised by vqa. Each message names the problem, the path and what to do."""


class VQAError(Exception):
    """Base class of every error vqa raises on purpose."""


class ConfigError(VQAError, ValueError):
    """A config file or value is invalid."""


class DatasetError(VQAError):
    """A prepared dataset is missing, malformed or inconsistent."""


class RunDirError(VQAError):
    """A run directory is missing something answering or evaluation needs."""


class ImageError(VQAError, ValueError):
    """An image cannot be found, read or decoded."""


class QuestionError(VQAError, ValueError):
    """A question is empty or not a string."""


class TrainingError(VQAError):
    """Training cannot go on (a loss that is not a number); the run keeps its last good
    checkpoint."""
