"""vqa: visual question answering with Keras 3.

The public API. Names are imported on first use, so that `import vqa` (and the
`vqa` command's start-up) does not load TensorFlow until something needs it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from vqa.startup import import_quietly

# TensorFlow's C++ start-up notes (oneDNN, CPU features) are not for the API's users;
# an environment that sets the level keeps its own.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"

_EXPORTS = {
    "Answerer": "vqa.answering",
    "AnswerResult": "vqa.answering",
    "Captioner": "vqa.captioning",
    "CaptionResult": "vqa.captioning",
    "evaluate_captioner": "vqa.evaluation",
    "score_captions": "vqa.metrics",
    "train_captioner": "vqa.training.fit",
    "Config": "vqa.config",
    "ModelConfig": "vqa.config",
    "TrainConfig": "vqa.config",
    "load_config": "vqa.config",
    "PreparedDataset": "vqa.data.dataset",
    "VQAError": "vqa.errors",
    "ConfigError": "vqa.errors",
    "DatasetError": "vqa.errors",
    "ImageError": "vqa.errors",
    "QuestionError": "vqa.errors",
    "RunDirError": "vqa.errors",
    "evaluate_run": "vqa.evaluation",
    "score_predictions": "vqa.evaluation",
    "score_results_file": "vqa.evaluation",
    "answer_scores": "vqa.metrics",
    "normalize_answer": "vqa.metrics",
    "vqa_accuracy": "vqa.metrics",
    "build_model": "vqa.models",
    "pipeline": "vqa.pipelines",
    "train": "vqa.training",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:  # TensorFlow, if it loads now, without its start-up notes
        value = getattr(import_quietly(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vqa' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from vqa.answering import Answerer, AnswerResult
    from vqa.captioning import Captioner, CaptionResult
    from vqa.config import Config, ModelConfig, TrainConfig, load_config
    from vqa.data.dataset import PreparedDataset
    from vqa.errors import (
        ConfigError,
        DatasetError,
        ImageError,
        QuestionError,
        RunDirError,
        VQAError,
    )
    from vqa.evaluation import (
        evaluate_captioner,
        evaluate_run,
        score_predictions,
        score_results_file,
    )
    from vqa.metrics import answer_scores, normalize_answer, score_captions, vqa_accuracy
    from vqa.models import build_model
    from vqa.pipelines import pipeline
    from vqa.training import train
    from vqa.training.fit import train_captioner
