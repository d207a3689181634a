"""A Relation Network over every pair of grid cells, with the question."""

from __future__ import annotations

import keras
from keras import ops

from vqa.models.checks import check_sizes
from vqa.models.fusions.registry import register_fusion
from vqa.models.grid import with_coordinates


@keras.saving.register_keras_serializable(package="vqa")
@register_fusion("relation", reads="grid", layer_name="relation")
class RelationModule(keras.layers.Layer):
    """Relation Network (Santoro et al. 2017): a small MLP g applied to every ordered pair
    of cells together with the question, averaged over pairs.

    Each cell carries its (x, y) position in [-1, 1], so that relations such as
    "closest" and "left of" can be computed. g's first layer is linear in the
    concatenation [o_i, o_j, q], so it is computed as W_i o_i + W_j o_j + W_q q and
    broadcast over the pairs: n_cells^2 additions instead of n_cells^2 matrix products.

    Args:
        units: width of g's layers and of the output.
        depth: how many layers g has (>= 1).

    Call arguments:
        inputs: [question, grid]: [batch, q_dim] and [batch, rows, cols, channels].

    Output shape:
        [batch, units]: the mean over pairs of g, passed through one more ReLU layer (f).
    """

    def __init__(self, units: int, depth: int = 3, **kwargs):
        super().__init__(**kwargs)
        check_sizes(units=units, depth=depth)
        self.units = units
        self.depth = depth

    def build(self, input_shape):
        question_shape, grid_shape = input_shape
        cell_shape = (None, None, grid_shape[-1] + 2)
        self.first_cell = keras.layers.Dense(self.units, name="g0_first")
        self.first_cell.build(cell_shape)
        self.second_cell = keras.layers.Dense(self.units, use_bias=False, name="g0_second")
        self.second_cell.build(cell_shape)
        self.question = keras.layers.Dense(self.units, use_bias=False, name="g0_question")
        self.question.build(question_shape)
        self.g = []
        for i in range(1, self.depth):
            layer = keras.layers.Dense(self.units, activation="relu", name=f"g{i}")
            layer.build((None, None, None, self.units))
            self.g.append(layer)
        self.f = keras.layers.Dense(self.units, activation="relu", name="f")
        self.f.build((None, self.units))

    def call(self, inputs):
        question, grid = inputs
        cells = with_coordinates(grid)
        cells = ops.reshape(cells, (ops.shape(grid)[0], -1, cells.shape[-1]))  # [b, n, c + 2]
        pairs = (
            ops.expand_dims(self.first_cell(cells), 2)  # o_i: [b, n, 1, units]
            + ops.expand_dims(self.second_cell(cells), 1)  # o_j: [b, 1, n, units]
            + ops.expand_dims(ops.expand_dims(self.question(question), 1), 1)
        )
        hidden = ops.relu(pairs)  # [b, n, n, units]
        for layer in self.g:
            hidden = layer(hidden)
        # The mean, not the paper's sum: with 25-49 cells the sum of 600-2,400 ReLU
        # outputs saturates the softmax at the first steps (loss stuck at ~12 here).
        return self.f(ops.mean(hidden, axis=(1, 2)))  # [b, units]

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "depth": self.depth}
