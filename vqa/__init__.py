"""vqa: visual question answering with Keras 3.

The public API; everything else is reachable through the submodules.
"""

from vqa.answering import Answerer, AnswerResult
from vqa.config import Config, ModelConfig, TrainConfig, load_config
from vqa.data.dataset import PreparedDataset
from vqa.errors import (ConfigError, DatasetError, ImageError, QuestionError, RunDirError,
                        VQAError)
from vqa.evaluation import (evaluate_run, normalize_answer, score_predictions,
                            score_results_file, vqa_accuracy)
from vqa.models import build_model
from vqa.training import train

__version__ = "0.1.0"
__all__ = [
    "Answerer", "AnswerResult", "Config", "ModelConfig", "TrainConfig", "load_config",
    "PreparedDataset", "VQAError", "ConfigError", "DatasetError", "ImageError",
    "QuestionError", "RunDirError", "evaluate_run", "normalize_answer", "score_predictions",
    "score_results_file", "vqa_accuracy", "build_model", "train",
]
