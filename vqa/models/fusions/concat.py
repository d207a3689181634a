"""Concatenation fusion: [question, image] -> one ReLU projection."""

from __future__ import annotations

import keras
from keras import ops

from vqa.models.checks import check_sizes
from vqa.models.fusions.registry import register_fusion


@keras.saving.register_keras_serializable(package="vqa")
@register_fusion("concat", reads="vector")
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
