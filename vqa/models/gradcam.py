"""Grad-CAM (Selvaraju et al. 2017) over the cached grid: where a model that pools the
grid (no attention of its own) drew its answer from.

The map is ReLU(sum_c alpha_c A_c) over the cells, A the grid the model reads and
alpha_c the mean over the cells of the answer probability's gradient with respect to
channel c, scaled to sum to 1. It is a gradient, not attention: the model did not
weigh the cells so, they are where a small change moves the answer most.
"""

from __future__ import annotations

import keras
import numpy as np


def input_gradient(model: keras.Model, inputs: dict, answer: int) -> np.ndarray:
    """d probs[0, answer] / d inputs["image"], on the backend Keras runs on."""
    backend = keras.backend.backend()
    if backend not in _GRADIENTS:
        raise ValueError(f"Grad-CAM has no gradient for the {backend} backend.")
    grid = np.asarray(inputs["image"], dtype="float32")
    # Keras will not take a mix of tensors and arrays: every input becomes a tensor.
    rest = {k: keras.ops.convert_to_tensor(v) for k, v in inputs.items() if k != "image"}

    def score(image):
        return model({**rest, "image": image}, training=False)[0, answer]

    return np.asarray(_GRADIENTS[backend](score, grid))


def _tensorflow_gradient(score, grid: np.ndarray):
    import tensorflow as tf

    image = tf.convert_to_tensor(grid)
    with tf.GradientTape() as tape:
        tape.watch(image)
        value = score(image)
    # The model gathers each question's image (ops.take): the gradient comes as slices.
    return tf.convert_to_tensor(tape.gradient(value, image))


def _jax_gradient(score, grid: np.ndarray):
    import jax

    return jax.grad(score)(grid)


def _torch_gradient(score, grid: np.ndarray):
    import torch

    image = torch.tensor(grid, requires_grad=True)
    score(image).backward()
    return image.grad.detach().cpu().numpy()


_GRADIENTS = {"tensorflow": _tensorflow_gradient, "jax": _jax_gradient, "torch": _torch_gradient}


def grid_gradient(
    model: keras.Model, inputs: dict, answer: int, layer: str
) -> tuple[np.ndarray, np.ndarray]:
    """The grid a model computes itself (the output of `layer`, e.g. its small CNN's) and
    d probs[0, answer] / d grid. TensorFlow only: it records the forward pass and takes
    the gradient with respect to a tensor computed inside it."""
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "Grad-CAM over a grid the model computes needs the TensorFlow "
            f"backend. Received: {keras.backend.backend()}"
        )
    import tensorflow as tf

    both = keras.Model(model.inputs, [model.get_layer(layer).output, model.output])
    tensors = {k: tf.convert_to_tensor(v) for k, v in inputs.items()}
    with tf.GradientTape() as tape:
        grid, probs = both(tensors, training=False)
        score = probs[0, answer]
    gradient = tf.convert_to_tensor(tape.gradient(score, grid))
    return np.asarray(grid), np.asarray(gradient)


def grad_cam(model: keras.Model, inputs: dict, answer: int, layer: str | None = None) -> np.ndarray:
    """[rows, cols] Grad-CAM of answer index `answer` for the one question of `inputs`:
    over its "image" input, the grid [1, rows, cols, channels], or with `layer` over that
    layer's output (a grid the model computes from pixels). Sums to 1, or is uniform
    when no cell raises the answer."""
    if layer is None:
        grid = np.asarray(inputs["image"], dtype="float32")[0]  # [rows, cols, c]
        gradient = input_gradient(model, inputs, answer)[0]  # [rows, cols, c]
    else:
        grids, gradients = grid_gradient(model, inputs, answer, layer)
        grid, gradient = grids[0], gradients[0]
    alpha = gradient.mean(axis=(0, 1))  # [c]
    cam = np.maximum((grid * alpha).sum(axis=-1), 0.0)  # [rows, cols]
    total = cam.sum()
    return cam / total if total > 0 else np.full(cam.shape, 1.0 / cam.size, "float32")
