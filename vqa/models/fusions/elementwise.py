"""Elementwise-product fusion: both vectors projected with tanh, then multiplied."""

from __future__ import annotations

import keras
from keras import ops

from vqa.models.checks import check_sizes
from vqa.models.fusions.registry import register_fusion


@keras.saving.register_keras_serializable(package="vqa")
@register_fusion("elementwise", reads="vector")
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
        self.project_question = keras.layers.Dense(
            units, activation="tanh", name="project_question"
        )
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
