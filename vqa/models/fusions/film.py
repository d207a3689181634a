"""FiLM: residual conv blocks over the grid whose channels the question scales and shifts."""

from __future__ import annotations

import keras
from keras import ops

from vqa.models.checks import check_sizes
from vqa.models.fusions.registry import register_fusion
from vqa.models.grid import modulate, with_coordinates


@keras.saving.register_keras_serializable(package="vqa")
@register_fusion("film", reads="grid", layer_name="film")
class FiLMModule(keras.layers.Layer):
    """FiLM (Perez et al. 2018): residual conv blocks over the grid, each scaling and
    shifting its channels by amounts the question sets (feature-wise linear modulation).

    Where attention must first learn features that tell the cells apart and only then
    where to look, the question here gates the channels themselves, at every block: "red"
    can turn up the red detectors directly. Each block, as in the paper (cell coordinates
    in front of each 1x1 conv):
        x = relu(conv1x1([x, xy]));  h = batchnorm(conv3x3(x)) (no scale, no shift);
        x = x + relu((1 + gamma(q)) * h + beta(q))
    gamma is 1 + a learnt offset, so that the blocks start as plain residual blocks.
    A 1x1 conv stem before the blocks, a 1x1 conv and a max over the cells after them.

    Args:
        units: channels of the blocks and size of the output.
        blocks: how many FiLM blocks (the paper: 4).

    Call arguments:
        inputs: [question, grid]: [batch, q_dim] and [batch, rows, cols, channels].

    Output shape:
        [batch, units]
    """

    def __init__(self, units: int, blocks: int = 4, **kwargs):
        super().__init__(**kwargs)
        check_sizes(units=units, blocks=blocks)
        self.units = units
        self.blocks = blocks

    def build(self, input_shape):
        question_shape, grid_shape = input_shape
        n = self.units

        def conv(kernel, channels, name, **kwargs):
            layer = keras.layers.Conv2D(n, kernel, padding="same", name=name, **kwargs)
            layer.build((None, None, None, channels))
            return layer

        self.stem = conv(1, grid_shape[-1] + 2, "stem", activation="relu")
        self.in_convs, self.convs, self.norms, self.films = [], [], [], []
        for i in range(self.blocks):
            self.in_convs.append(conv(1, n + 2, f"block{i}_in", activation="relu"))
            self.convs.append(conv(3, n, f"block{i}_conv", use_bias=False))
            norm = keras.layers.BatchNormalization(center=False, scale=False, name=f"block{i}_norm")
            norm.build((None, None, None, n))
            self.norms.append(norm)
            film = keras.layers.Dense(2 * n, name=f"block{i}_film")  # [gamma - 1, beta]
            film.build(question_shape)
            self.films.append(film)
        self.head = conv(1, n + 2, "head", activation="relu")

    def call(self, inputs, training=None):
        question, grid = inputs
        x = self.stem(with_coordinates(grid))  # [b, rows, cols, units]
        for block_in, block_conv, norm, film in zip(
            self.in_convs, self.convs, self.norms, self.films
        ):
            x = block_in(with_coordinates(x))
            h = norm(block_conv(x), training=training)
            x = x + ops.relu(modulate(h, film(question)))
        return ops.max(self.head(with_coordinates(x)), axis=(1, 2))  # [b, units]

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "blocks": self.blocks}
