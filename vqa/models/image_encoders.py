"""The image encoders, registered by name: what `image_encoder` names in a config. An
encoder turns the model's "image" input into a grid of cells [g, g, channels]:

    small_cnn        pixels, a CNN trained with the model, once per image of a batch
    conditioned_cnn  pixels, the same CNN with the question in every block, per question
    pretrained       a frozen backbone's grid, cached by `vqa extract` (vqa.features)

A new encoder is one class; it reads pixels at `image_size` (only `pretrained` reads
cached grids, which the feature cache makes):

    @register_image_encoder("mine")
    class Mine(ImageEncoder):
        def layer(self):
            return keras.Sequential([...], name="image_encoder")  # pixels -> grid
"""

from __future__ import annotations

import keras
from keras import ops

from vqa.config import ModelConfig
from vqa.errors import ConfigError
from vqa.models.grid import modulate
from vqa.registry import Registry

IMAGE_ENCODERS = Registry("image encoder", "vqa.models.image_encoders.register_image_encoder")


class ImageEncoder:
    """A kind of image branch, made from the config's image section.

    `per_question`: False, the layer maps [images, ...] to [images, g, g, C] once per
    image of a batch; True, it is called as layer([question_vector, images]) on each
    question's image ([batch, ...] -> [batch, g, g, C]), so the question can steer it.
    """

    per_question = False

    def __init__(self, config: ModelConfig):
        self.config = config

    def check(self) -> None:
        """Rules the rest of the config must keep for this encoder; raises ConfigError."""
        if self.per_question and self.config.decoder:
            raise ConfigError(
                f"image_encoder: {self.config.image_encoder} reads a question; a captioner "
                "has none. Use small_cnn or pretrained."
            )
        if self.per_question and self.config.inputs != "both":
            raise ConfigError(
                f"image_encoder: {self.config.image_encoder} reads the question, so it "
                f"needs both inputs. Received: inputs={self.config.inputs!r}"
            )

    def input_shape(self, grid_shape: tuple[int, int, int] | None) -> tuple[int, int, int]:
        """The model's "image" input: pixels at image_size."""
        size = self.config.image_size
        return (size, size, 3)

    def layer(self) -> keras.layers.Layer:
        """The layer named "image_encoder" that makes the grid."""
        raise NotImplementedError


def register_image_encoder(name: str):
    """Class decorator: make the encoder available as `image_encoder: name`."""
    return IMAGE_ENCODERS.decorator(name, ImageEncoder)


def get_image_encoder(config: ModelConfig) -> ImageEncoder:
    """The encoder `config.image_encoder` names, its rules checked; an unknown name is a
    one-line ConfigError."""
    encoder = IMAGE_ENCODERS.named(config.image_encoder)(config)
    encoder.check()
    return encoder


def _strided_conv(i: int, filters: int) -> keras.layers.Conv2D:
    """Block i's conv: 5x5 for the first block, 3x3 after; stride 2; no bias (batch norm
    follows)."""
    return keras.layers.Conv2D(
        filters, 5 if i == 0 else 3, strides=2, padding="same", use_bias=False, name=f"conv{i}"
    )


@register_image_encoder("small_cnn")
class SmallCNN(ImageEncoder):
    """A CNN trained from scratch: uint8 image -> [grid, grid, channels] feature grid.

    Each entry of `cnn_filters` is one block that halves the resolution: a strided
    conv (5x5 for the first, 3x3 after), batch norm, ReLU. Strided convs rather than
    conv + pool: four times less arithmetic, which is what CPU training is bound by.
    """

    def check(self) -> None:
        super().check()
        halvings = 2 ** len(self.config.cnn_filters)
        if self.config.image_size % halvings:
            raise ConfigError(
                f"image_size must be divisible by 2**len(cnn_filters)={halvings}. "
                f"Received: image_size={self.config.image_size}"
            )

    def layer(self) -> keras.Sequential:
        blocks: list[keras.layers.Layer] = [keras.layers.Rescaling(1.0 / 255)]
        for i, filters in enumerate(self.config.cnn_filters):
            blocks += [
                _strided_conv(i, filters),
                keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}"),
                keras.layers.ReLU(name=f"relu{i}"),
            ]
        return keras.Sequential(
            [keras.Input(self.input_shape(None)), *blocks], name="image_encoder"
        )


@register_image_encoder("conditioned_cnn")
class ConditionedSmallCNN(SmallCNN):
    """The small CNN with the question in every block (`ConditionedCNN`): it runs per
    question, so "red" can turn up red detectors from the first layer on."""

    per_question = True

    def layer(self) -> keras.layers.Layer:
        return ConditionedCNN(self.config.cnn_filters, name="image_encoder")


@register_image_encoder("pretrained")
class PretrainedGrid(ImageEncoder):
    """Grid features cached from a frozen pretrained backbone (`backbone`, at
    `backbone_image_size`) come in as they are."""

    def input_shape(self, grid_shape: tuple[int, int, int] | None) -> tuple[int, int, int]:
        """The cached grid, whose shape the caller gives (model code does not look
        backbones up)."""
        if grid_shape is None:
            raise ValueError(
                "A pretrained image encoder reads a cached feature grid: give "
                "build_model its shape, grid_shape=(rows, cols, channels), e.g. "
                "vqa.features.backbones.grid_shape(config.backbone, "
                "config.backbone_image_size). Received: grid_shape=None"
            )
        return tuple(grid_shape)

    def layer(self) -> keras.layers.Layer:
        return keras.layers.Identity(name="image_encoder")


@keras.saving.register_keras_serializable(package="vqa")
class ConditionedCNN(keras.layers.Layer):
    """The small CNN with the question in every block (conditional batch norm, de Vries
    et al. 2017, "Modulating early visual processing by language").

    Each block is a strided conv, batch norm without its own scale and shift, then
    relu((1 + gamma(q)) * h + beta(q)), where gamma and beta are linear in the question
    vector: with those weights at 0 it is the plain CNN (`small_cnn`). From the first
    layer on, "red" can turn up red detectors: on Sort-of-CLEVR the plain CNN learns
    to ignore which object is asked about, this one to find it.

    Args:
        filters: channels of each block (each halves the resolution).

    Call arguments:
        inputs: [question, image]: [batch, q_dim] and [batch, S, S, 3] uint8 pixels.

    Output shape:
        [batch, S / 2**blocks, S / 2**blocks, filters[-1]]
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = [int(f) for f in filters]
        if not self.filters or min(self.filters) <= 0:
            raise ValueError(
                f"filters must be a non-empty list of positive integers. "
                f"Received: filters={list(filters)}"
            )

    def build(self, input_shape):
        question_shape, image_shape = input_shape
        self.convs, self.norms, self.films = [], [], []
        channels = image_shape[-1]
        for i, n in enumerate(self.filters):
            conv = _strided_conv(i, n)
            conv.build((None, None, None, channels))
            norm = keras.layers.BatchNormalization(
                momentum=0.9, center=False, scale=False, name=f"bn{i}"
            )
            norm.build((None, None, None, n))
            film = keras.layers.Dense(2 * n, name=f"film{i}")  # [gamma - 1, beta]
            film.build(question_shape)
            self.convs.append(conv)
            self.norms.append(norm)
            self.films.append(film)
            channels = n

    def call(self, inputs, training=None):
        question, image = inputs
        x = ops.cast(image, self.compute_dtype) / 255.0
        for conv, norm, film in zip(self.convs, self.norms, self.films):
            x = ops.relu(modulate(norm(conv(x), training=training), film(question)))
        return x

    def compute_output_shape(self, input_shape):
        batch, size = input_shape[1][0], input_shape[1][1]
        grid = None if size is None else size // 2 ** len(self.filters)
        return (batch, grid, grid, self.filters[-1])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}
