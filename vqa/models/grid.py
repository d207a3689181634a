"""What the layers that read the grid cell by cell share: each cell's position, and
feature-wise modulation of the grid's channels by the question."""

from __future__ import annotations

import keras
from keras import ops


def coordinates(rows, cols, dtype):
    """[rows, cols, 2]: each cell's (x, y) in [-1, 1]."""
    ys = ops.linspace(-1.0, 1.0, rows)
    xs = ops.linspace(-1.0, 1.0, cols)
    coords = ops.stack(
        [
            ops.repeat(ops.expand_dims(xs, 0), rows, axis=0),
            ops.repeat(ops.expand_dims(ys, 1), cols, axis=1),
        ],
        axis=-1,
    )
    return ops.cast(coords, dtype)


def with_coordinates(grid):
    """[batch, rows, cols, c] -> [batch, rows, cols, c + 2]: each cell's (x, y) in [-1, 1]."""
    batch, rows, cols = ops.shape(grid)[0], ops.shape(grid)[1], ops.shape(grid)[2]
    coords = ops.broadcast_to(
        ops.expand_dims(coordinates(rows, cols, grid.dtype), 0), (batch, rows, cols, 2)
    )
    return ops.concatenate([grid, coords], axis=-1)


def modulate(grid, gamma_beta):
    """Feature-wise linear modulation: (1 + gamma) * grid + beta, channel by channel.

    grid: [batch, rows, cols, n]; gamma_beta: [batch, 2n], gamma then beta (so that
    all-zero gamma_beta leaves the grid as it is).
    """
    gamma, beta = ops.split(gamma_beta, 2, axis=-1)  # [batch, n] each
    gamma = ops.expand_dims(ops.expand_dims(gamma, 1), 1)
    beta = ops.expand_dims(ops.expand_dims(beta, 1), 1)
    return (1.0 + gamma) * grid + beta


@keras.saving.register_keras_serializable(package="vqa")
class GridCoordinates(keras.layers.Layer):
    """Append each cell's (x, y) position in [-1, 1] to its features.

    Call arguments:
        grid: [batch, rows, cols, channels].

    Output shape:
        [batch, rows, cols, channels + 2]
    """

    def call(self, grid):
        return with_coordinates(grid)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 2)


def with_distance(offset):
    """Offsets [..., 2] -> [..., 3]: (dx, dy, dx^2 + dy^2)."""
    return ops.concatenate([offset, ops.sum(offset * offset, axis=-1, keepdims=True)], -1)


def without_position(cells):
    """The cells [b, n, c + 2] with their (x, y) set to 0: what they look like, not where."""
    return ops.concatenate([cells[..., :-2], ops.zeros_like(cells[..., -2:])], axis=-1)


def strided_block(channels: int, in_channels: int, name: str):
    """A built 3x3 stride-2 conv without bias ("NAME_conv") and the batch norm after it
    ("NAME_norm", without centre or scale: FiLM's or nothing follows)."""
    conv = keras.layers.Conv2D(
        channels, 3, strides=2, padding="same", use_bias=False, name=f"{name}_conv"
    )
    conv.build((None, None, None, in_channels))
    norm = keras.layers.BatchNormalization(
        momentum=0.9, center=False, scale=False, name=f"{name}_norm"
    )
    norm.build((None, None, None, channels))
    return conv, norm


def related(relation, half, geometry=None, anchor=None, xy=None):
    """How well each cell stands in the relation a question asks, [b, n].

    relation: [b, 4], a (for dx, dy, d^2) then b; half: the grid's half width in cells
    (offsets are weighed in cells, not in [-1, 1]). From one position: log sigmoid(a .
    t_i + b), t_i = `geometry` [b, n, 3], each cell's offset from it. Given a map
    `anchor` [b, n] and the cells' `xy` [1, n, 2], cell to cell: log sum_j anchor_j
    sigmoid(a . t_ij + b), t_ij cell i's offset from cell j.
    """
    scale = ops.convert_to_tensor([half, half, half * half], relation.dtype)
    if anchor is None:
        fit = ops.einsum("bnk,bk->bn", geometry * scale, relation[:, :3]) + relation[:, 3:]
        return ops.log_sigmoid(fit)
    t = with_distance(xy[0, :, None, :] - xy[0, None, :, :]) * scale  # [n, n, 3]
    fit = ops.einsum("ijk,bk->bij", t, relation[:, :3]) + relation[:, 3:, None]
    return ops.log(ops.einsum("bij,bj->bi", ops.sigmoid(fit), anchor) + 1e-6)
