"""Model parts: encoders, fusion layers, the builder, the loss and metric."""

from vqa.models.builder import build_model
from vqa.models.fusion import FUSIONS, ConcatFusion, ElementwiseFusion
from vqa.models.losses import soft_crossentropy, vqa_score
from vqa.models.optimizers import TwoRateAdam

__all__ = ["build_model", "FUSIONS", "ConcatFusion", "ElementwiseFusion",
           "soft_crossentropy", "vqa_score", "TwoRateAdam"]
