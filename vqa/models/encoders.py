"""The question branch: token ids to a question vector (or every word's state); and
`ImageRows`, which gives each question its image's grid (the image branches are in
vqa.models.image_encoders)."""

from __future__ import annotations

import keras

from vqa.config import ModelConfig
from vqa.models.recurrent import get_recurrent


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
