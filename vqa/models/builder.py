"""Assemble a VQA model from its parts, given sizes only."""

from __future__ import annotations

import keras

from vqa.config import ModelConfig
from vqa.models.encoders import IMAGE_ENCODERS, QUESTION_ENCODERS, image_input_shape
from vqa.models.fusion import FUSIONS


def build_model(config: ModelConfig, vocab_size: int, num_answers: int,
                backbone: keras.Model | None = None) -> keras.Model:
    """Image branch + question branch + fusion + answer classifier.

    Inputs: {"image": [batch, S, S, 3] pixels (0-255) for the small CNN, or the cached
    [batch, g, g, C] grid of a pretrained backbone; "question": [batch, L] int32 ids}.
    Output: [batch, num_answers] answer probabilities.

    With `backbone` (a pixels -> grid network, to fine-tune), the model takes the
    backbone's pixels as "image" and runs it first.
    """
    if backbone is not None:
        head = build_model(config, vocab_size, num_answers)
        pixels = keras.Input(backbone.input.shape[1:], name="image")
        question = keras.Input((config.max_question_length,), dtype="int32", name="question")
        # training=False: the backbone's batch norm keeps its ImageNet statistics; small
        # batches would otherwise overwrite them.
        answers = head({"image": backbone(pixels, training=False), "question": question})
        return keras.Model({"image": pixels, "question": question}, answers, name="vqa")
    if vocab_size < 3 or num_answers < 1:
        raise ValueError("build_model needs vocab_size >= 3 (pad, unknown, a word) and "
                         f"num_answers >= 1. Received: vocab_size={vocab_size}, "
                         f"num_answers={num_answers}")
    image = keras.Input(image_input_shape(config), name="image")  # pixels or a feature grid
    question = keras.Input((config.max_question_length,), dtype="int32", name="question")

    grid = IMAGE_ENCODERS[config.image_encoder](config)(image)  # [batch, g, g, C]
    pooled = keras.layers.GlobalMaxPooling2D(name="pool_grid")(grid)  # [batch, C]
    image_vector = keras.layers.Dense(config.image_dim, activation="relu",
                                      name="image_vector")(pooled)  # [batch, image_dim]
    question_vector = QUESTION_ENCODERS[config.question_encoder](config, vocab_size)(question)

    fused = FUSIONS[config.fusion](config.fusion_dim, name="fusion")(
        [question_vector, image_vector])  # [batch, fusion_dim]
    fused = keras.layers.Dropout(config.dropout, name="dropout")(fused)
    hidden = keras.layers.Dense(config.classifier_dim, activation="relu",
                                name="classifier_hidden")(fused)
    answers = keras.layers.Dense(num_answers, activation="softmax", name="answer")(hidden)
    return keras.Model({"image": image, "question": question}, answers, name="vqa")
