"""Low-rank bilinear fusion (MFB, Yu et al. 2017)."""

from __future__ import annotations

import keras
from keras import ops

from vqa.models.checks import check_sizes
from vqa.models.fusions.registry import register_fusion


@keras.saving.register_keras_serializable(package="vqa")
@register_fusion("mfb", reads="vector")
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
