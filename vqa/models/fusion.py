"""Fusion of the question vector with the image vector.

Each fusion is a layer with the same contract:
    call([question, image]) -> fused
    question: [batch, question_dim], image: [batch, image_dim] -> [batch, units]
"""

from __future__ import annotations

import keras
from keras import ops


def check_sizes(**sizes: int) -> None:
    """A layer's sizes must be positive; the error names each one and its value."""
    if any(v <= 0 for v in sizes.values()):
        received = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise ValueError(f"{' and '.join(sizes)} must be positive. Received: {received}")


@keras.saving.register_keras_serializable(package="vqa")
class ConcatFusion(keras.layers.Layer):
    """Concatenate the two vectors, then one ReLU projection.

    Args:
        units: size of the fused vector.

    Call arguments:
        inputs: [question, image], shapes [batch, q_dim] and [batch, v_dim].

    Output shape:
        [batch, units]
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        check_sizes(units=units)
        self.units = units
        self.project = keras.layers.Dense(units, activation="relu", name="project")

    def build(self, input_shape):
        question_shape, image_shape = input_shape
        self.project.build((None, question_shape[-1] + image_shape[-1]))

    def call(self, inputs):
        question, image = inputs
        joint = ops.concatenate([question, image], axis=-1)  # [batch, q_dim + v_dim]
        return self.project(joint)  # [batch, units]

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="vqa")
class ElementwiseFusion(keras.layers.Layer):
    """Project both vectors to `units` with tanh, then multiply elementwise.

    Args:
        units: size of the common space and of the fused vector.

    Call arguments:
        inputs: [question, image], shapes [batch, q_dim] and [batch, v_dim].

    Output shape:
        [batch, units]
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        check_sizes(units=units)
        self.units = units
        self.project_question = keras.layers.Dense(units, activation="tanh",
                                                   name="project_question")
        self.project_image = keras.layers.Dense(units, activation="tanh", name="project_image")

    def build(self, input_shape):
        question_shape, image_shape = input_shape
        self.project_question.build(question_shape)
        self.project_image.build(image_shape)

    def call(self, inputs):
        question, image = inputs
        q = self.project_question(question)  # [batch, units]
        v = self.project_image(image)  # [batch, units]
        return ops.multiply(q, v)  # [batch, units]

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="vqa")
class MFBFusion(keras.layers.Layer):
    """Low-rank bilinear fusion (Yu et al. 2017, "Multi-modal Factorized Bilinear pooling").

    Both vectors are projected to units * factor, multiplied elementwise, sum-pooled in
    groups of `factor` (a rank-`factor` bilinear form per output), then power- and
    L2-normalised, which keeps the products' scale stable.

    Args:
        units: size of the fused vector.
        factor: rank of each output's bilinear form.

    Call arguments:
        inputs: [question, image], shapes [batch, q_dim] and [batch, v_dim].

    Output shape:
        [batch, units]
    """

    def __init__(self, units: int, factor: int = 5, **kwargs):
        super().__init__(**kwargs)
        check_sizes(units=units, factor=factor)
        self.units = units
        self.factor = factor
        self.project_question = keras.layers.Dense(units * factor, name="project_question")
        self.project_image = keras.layers.Dense(units * factor, name="project_image")

    def build(self, input_shape):
        question_shape, image_shape = input_shape
        self.project_question.build(question_shape)
        self.project_image.build(image_shape)

    def call(self, inputs):
        question, image = inputs
        joint = self.project_question(question) * self.project_image(image)  # [b, u * k]
        pooled = ops.sum(ops.reshape(joint, (-1, self.units, self.factor)), axis=-1)
        pooled = ops.sign(pooled) * ops.sqrt(ops.abs(pooled) + 1e-8)  # power normalisation
        return pooled / (ops.norm(pooled, axis=-1, keepdims=True) + 1e-8)  # [b, units]

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "factor": self.factor}


FUSIONS = {"concat": ConcatFusion, "elementwise": ElementwiseFusion, "mfb": MFBFusion}
