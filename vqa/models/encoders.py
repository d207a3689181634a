"""The two input branches: an image encoder to a spatial grid, a question encoder."""

from __future__ import annotations

import keras
from keras import ops

from vqa.config import ModelConfig
from vqa.models.grid import modulate
from vqa.models.recurrent import get_recurrent


def _strided_conv(i: int, filters: int) -> keras.layers.Conv2D:
    """Block i's conv: 5x5 for the first block, 3x3 after; stride 2; no bias (batch norm
    follows)."""
    return keras.layers.Conv2D(
        filters, 5 if i == 0 else 3, strides=2, padding="same", use_bias=False, name=f"conv{i}"
    )


def small_cnn(config: ModelConfig) -> keras.Sequential:
    """A CNN trained from scratch: uint8 image -> [grid, grid, channels] feature grid.

    Each entry of `cnn_filters` is one block that halves the resolution: a strided
    conv (5x5 for the first, 3x3 after), batch norm, ReLU. Strided convs rather than
    conv + pool: four times less arithmetic, which is what CPU training is bound by.
    """
    size = config.image_size
    blocks: list[keras.layers.Layer] = [keras.layers.Rescaling(1.0 / 255)]
    for i, filters in enumerate(config.cnn_filters):
        blocks += [
            _strided_conv(i, filters),
            keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}"),
            keras.layers.ReLU(name=f"relu{i}"),
        ]
    return keras.Sequential([keras.Input((size, size, 3)), *blocks], name="image_encoder")


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


def question_encoder(config: ModelConfig, vocab_size: int) -> keras.Model:
    """Token ids (0 = padding) -> word embeddings -> recurrent layers -> [question_dim]
    (twice that when bidirectional): the last state of the last layer. With
    `attention_words`, every word's state instead, [L, question_dim], for attention to
    read (`LastState` then gives the last one: a padded step repeats the state before it).

    `question_encoder` names the recurrent unit (vqa.models.recurrent: lstm, gru, rnn),
    `question_layers` stacks 1-4 of them, `bidirectional` reads the question both
    ways. The embedding is named "word_embedding" so that word vectors can be loaded
    into it. With `attention_word_embeddings`, the encoder gives [states, embeddings].
    """
    cell = get_recurrent(config.question_encoder).layer
    ids = keras.Input((None,), dtype="int32")
    layers: list[keras.layers.Layer] = [
        keras.layers.Embedding(
            vocab_size, config.embedding_dim, mask_zero=True, name="word_embedding"
        )
    ]
    for i in range(config.question_layers):
        last = i == config.question_layers - 1
        name = (
            config.question_encoder
            if config.question_layers == 1
            else f"{config.question_encoder}{i + 1}"
        )
        layer = cell(
            config.question_dim, return_sequences=config.attention_words or not last, name=name
        )
        if config.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{name}")
        layers.append(layer)
    if config.attention_word_embeddings:
        embeddings = states = layers[0](ids)
        for layer in layers[1:]:
            states = layer(states)
        return keras.Model(ids, [states, embeddings], name="question_encoder")
    return keras.Sequential([ids, *layers], name="question_encoder")


@keras.saving.register_keras_serializable(package="vqa")
class LastState(keras.layers.Layer):
    """[batch, L, d] states of a one-way recurrent layer -> [batch, d], the last step's.

    Keras carries the state across masked steps, so with the padding at the end the last
    step holds the state after the last word: what the layer gives without
    return_sequences.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, states):
        return states[:, -1]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


@keras.saving.register_keras_serializable(package="vqa")
class ImageRows(keras.layers.Layer):
    """[images, ...] per image, [batch] int row of each question -> [batch, ...]: each
    question's image. A grouped batch (train.group_by_image) carries each of its images
    once, so the image branch runs once per image, not once per question."""

    def call(self, per_image, rows):
        return keras.ops.take(per_image, rows, axis=0)

    def compute_output_shape(self, per_image_shape, rows_shape):
        return (rows_shape[0], *per_image_shape[1:])


def pretrained_grid(config: ModelConfig) -> keras.layers.Layer:
    """Grid features cached from a frozen pretrained backbone come in as they are."""
    return keras.layers.Identity(name="image_encoder")


def image_input_shape(
    config: ModelConfig, grid_shape: tuple[int, int, int] | None
) -> tuple[int, int, int]:
    """What the model's "image" input is: pixels, or a backbone's feature grid, whose
    shape the caller gives (model code does not look backbones up)."""
    if config.image_encoder != "pretrained":
        return (config.image_size, config.image_size, 3)
    if grid_shape is None:
        raise ValueError(
            "A pretrained image encoder reads a cached feature grid: give "
            "build_model its shape, grid_shape=(rows, cols, channels), e.g. "
            "vqa.features.backbones.grid_shape(config.backbone, "
            "config.backbone_image_size). Received: grid_shape=None"
        )
    return tuple(grid_shape)


IMAGE_ENCODERS = {"small_cnn": small_cnn, "pretrained": pretrained_grid}
