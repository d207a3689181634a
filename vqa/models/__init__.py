"""Model parts: image encoders, recurrent units, fusions and decoders (registries),
the question encoder, attention, the builder, the loss and metric."""

from vqa.models.builder import build_captioner, build_model
from vqa.models.decoders import DECODERS, get_decoder
from vqa.models.fusions import (
    FUSIONS,
    ConcatFusion,
    ElementwiseFusion,
    check_fusion,
    register_fusion,
)
from vqa.models.image_encoders import IMAGE_ENCODERS, ImageEncoder, register_image_encoder
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
    "IMAGE_ENCODERS",
    "ImageEncoder",
    "register_image_encoder",
    "soft_crossentropy",
    "vqa_score",
    "TwoRateAdam",
    "RECURRENT",
    "Recurrent",
    "register_recurrent",
]
