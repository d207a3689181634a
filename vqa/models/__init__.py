"""Model parts: encoders, recurrent units, fusions and decoders (registries), attention,
the builder, the loss and metric."""

from vqa.models.builder import build_captioner, build_model
from vqa.models.decoders import DECODERS, get_decoder
from vqa.models.fusions import (
    FUSIONS,
    ConcatFusion,
    ElementwiseFusion,
    check_fusion,
    register_fusion,
)
from vqa.models.losses import soft_crossentropy, vqa_score
from vqa.models.optimizers import TwoRateAdam
from vqa.models.recurrent import RECURRENT, Recurrent, register_recurrent

__all__ = [
    "build_captioner",
    "build_model",
    "DECODERS",
    "get_decoder",
    "FUSIONS",
    "ConcatFusion",
    "ElementwiseFusion",
    "check_fusion",
    "register_fusion",
    "soft_crossentropy",
    "vqa_score",
    "TwoRateAdam",
    "RECURRENT",
    "Recurrent",
    "register_recurrent",
]
