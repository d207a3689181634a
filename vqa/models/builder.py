"""Assemble a VQA model from its parts, given sizes only."""

from __future__ import annotations

import keras
import numpy as np

from vqa.config import ModelConfig
from vqa.models.attention import HardAttention, ReinforcedModel, get_attention
from vqa.models.decoders import get_decoder
from vqa.models.encoders import ImageRows, LastState, question_encoder
from vqa.models.fusions import check_fusion, make_fusion
from vqa.models.grid import GridCoordinates
from vqa.models.image_encoders import get_image_encoder


def build_model(
    config: ModelConfig,
    vocab_size: int,
    num_answers: int,
    backbone: keras.Model | None = None,
    word_vectors: np.ndarray | None = None,
    grid_shape: tuple[int, int, int] | None = None,
) -> keras.Model:
    """Image branch + question branch + fusion (or attention, or relations) + classifier.

    Inputs: {"image": [images, S, S, 3] pixels (0-255) for the small CNN, or the cached
    [images, g, g, C] grid of a pretrained backbone: one per question, or each image of
    a grouped batch once (train.group_by_image);
    "about_image": [batch] int32, the row of "image" each question is about (named to
    come first in key order: Keras weighs each batch's logged loss by the length of the
    first input, which must be the questions');
    "question": [batch, L] int32 ids, 0-padded at the end, L any length (at most
    max_question_length by convention)}. `model_inputs` makes them.
    Output: [batch, num_answers] answer probabilities.

    A pretrained image encoder needs `grid_shape` (rows, cols, channels) of the cached
    grid. With `backbone` (a pixels -> grid network, to fine-tune), the model takes the
    backbone's pixels as "image" and runs it first (the grid shape is the backbone's).
    `word_vectors` [vocab_size, embedding_dim] initialise the word embedding. A one-input
    baseline (`inputs: question | image`) still takes both inputs, and ignores one.
    """
    if backbone is not None:
        head = build_model(
            config,
            vocab_size,
            num_answers,
            word_vectors=word_vectors,
            grid_shape=tuple(backbone.output.shape[1:]),
        )
        pixels = keras.Input(backbone.input.shape[1:], name="image")
        rows = keras.Input((), dtype="int32", name="about_image")
        question = keras.Input((None,), dtype="int32", name="question")
        # training=False: the backbone's batch norm keeps its ImageNet statistics; small
        # batches would otherwise overwrite them.
        answers = head(
            {"image": backbone(pixels, training=False), "about_image": rows, "question": question}
        )
        return _model_class(config)(
            {"image": pixels, "about_image": rows, "question": question}, answers, name="vqa"
        )
    fusion = check_fusion(config, construct=False)  # the registered class, options checked
    if vocab_size < 3 or num_answers < 1:
        raise ValueError(
            "build_model needs vocab_size >= 3 (pad, unknown, a word) and "
            f"num_answers >= 1. Received: vocab_size={vocab_size}, "
            f"num_answers={num_answers}"
        )
    encoder = get_image_encoder(config)
    image = keras.Input(encoder.input_shape(grid_shape), name="image")  # pixels or grid
    rows = keras.Input((), dtype="int32", name="about_image")
    question = keras.Input((None,), dtype="int32", name="question")
    question_vector = question_encoder(config, vocab_size)(question)
    if config.attention_words:  # the encoder gave every word's state
        if config.attention_word_embeddings:  # and every word's embedding
            word_states = keras.layers.Concatenate(name="word_states")(question_vector)
            question_vector = question_vector[0]
        else:
            word_states = question_vector  # [batch, L, question_dim]
        question_vector = LastState(name="question_vector")(question_vector)
    if encoder.per_question:  # the question steers the image branch: on each question's image
        grid = encoder.layer()([question_vector, ImageRows(name="image_rows")(image, rows)])
    elif config.inputs != "question":  # once per image, then each question's
        grid = encoder.layer()(image)  # [images, g, g, C]
        grid = ImageRows(name="image_rows")(grid, rows)  # [batch, g, g, C]

    if config.inputs == "question":  # baseline: what the question alone tells
        fused = question_vector
    elif fusion.reads == "grid":  # relation, film: every cell with the question
        words = [word_states, question] if config.attention_words else []  # referent
        fused = make_fusion(fusion, config, name=fusion.layer_name)(
            [question_vector, grid, *words]
        )  # [batch, fusion_dim]
    else:
        if config.attention_hops:
            if config.grid_coordinates:  # attended sums keep no position otherwise
                grid = GridCoordinates(name="grid_coordinates")(grid)
            cells = keras.layers.Reshape((-1, grid.shape[-1]), name="cells")(grid)
            cells = keras.layers.Dense(config.image_dim, activation="relu", name="image_vector")(
                cells
            )  # [batch, n, image_dim]
            words = [word_states, question] if config.attention_words else []
            image_vector, _ = get_attention(config.attention)(
                config.attention_dim,
                config.attention_hops,
                words=config.attention_words,
                counts=config.attention_counts,
                relative=config.attention_relative,
                name="attention",
            )([question_vector, cells, *words])
        else:  # the no-attention twin makes the grid one vector
            pool = (
                keras.layers.Flatten(name="pool_grid")  # every cell, its own weights
                if config.pool_grid == "flatten"
                else keras.layers.GlobalMaxPooling2D(name="pool_grid")
            )  # [batch, C]
            image_vector = keras.layers.Dense(
                config.image_dim, activation="relu", name="image_vector"
            )(pool(grid))
        if config.inputs == "image":  # baseline: what the image alone tells
            fused = image_vector
        else:
            fused = make_fusion(fusion, config, name=fusion.layer_name)(
                [question_vector, image_vector]
            )  # [batch, fusion_dim]
    fused = keras.layers.Dropout(config.dropout, name="dropout")(fused)
    hidden = keras.layers.Dense(config.classifier_dim, activation="relu", name="classifier_hidden")(
        fused
    )
    # float32 even under a mixed-precision policy: the loss takes the log of these.
    answers = keras.layers.Dense(num_answers, activation="softmax", dtype="float32", name="answer")(
        hidden
    )
    model = _model_class(config)(
        {"image": image, "about_image": rows, "question": question}, answers, name="vqa"
    )
    if word_vectors is not None:
        embedding = model.get_layer("question_encoder").get_layer("word_embedding")
        embedding.set_weights([np.asarray(word_vectors, dtype="float32")])
    return model


def _model_class(config: ModelConfig) -> type:
    """keras.Model, or ReinforcedModel where a sampled (hard) attention needs its
    REINFORCE term in the loss."""
    sampled = config.attention_hops and issubclass(get_attention(config.attention), HardAttention)
    return ReinforcedModel if sampled else keras.Model


def build_captioner(
    config: ModelConfig, vocab_size: int, grid_shape: tuple[int, int, int] | None = None
) -> keras.Model:
    """Image branch + a registered caption decoder (config.decoder, vqa.models.decoders).

    Inputs: {"image": pixels or the cached grid, as for `build_model`, one per caption;
    "caption": [batch, max_caption_length] int32 ids, <start> w1 .. wn, 0-padded}.
    Output: [batch, max_caption_length, vocab_size] next-word probabilities. The layer
    "decoder" decodes one word at a time (vqa.captioning), from the "cells" layer's
    output.
    """
    decoder_class = get_decoder(config.decoder)
    encoder = get_image_encoder(config)
    image = keras.Input(encoder.input_shape(grid_shape), name="image")
    caption = keras.Input((config.max_caption_length,), dtype="int32", name="caption")
    grid = encoder.layer()(image)  # [batch, g, g, C]
    cells = keras.layers.Reshape((-1, grid.shape[-1]), name="grid_cells")(grid)
    cells = keras.layers.Dense(config.image_dim, activation="relu", name="cells")(cells)
    probs, _ = decoder_class(
        vocab_size,
        cell=config.decoder_cell,
        layers=config.decoder_layers,
        units=config.decoder_dim,
        word_dim=config.word_dim,
        attention_dim=config.attention_dim,
        dropout=config.dropout,
        penalty=config.attention_penalty,
        name="decoder",
    )([cells, caption])
    model_class = ReinforcedModel if getattr(decoder_class, "reinforce", False) else keras.Model
    return model_class({"image": image, "caption": caption}, probs, name="captioner")


def takes_about_image(model: keras.Model) -> bool:
    """Whether `model` has the "about_image" input; models saved before it take one
    image per question, and nothing to say which."""
    return any(t.name == "about_image" for t in model.inputs)


def model_inputs(model: keras.Model, images: np.ndarray, questions: np.ndarray) -> dict:
    """`model`'s inputs for one image per question (images[i] for questions[i])."""
    if not takes_about_image(model):
        return {"image": images, "question": questions}
    return {
        "image": images,
        "about_image": np.arange(len(questions), dtype="int32"),
        "question": questions,
    }


def attention_model(model: keras.Model) -> tuple[keras.Model, tuple[int, int]] | None:
    """For a model that attends over its grid (stacked attention, or a fusion with
    `where_it_looks` and `looked_grid`, as the referent fusion's referents; its own or a
    loaded one): a model giving [answers, attention weights [batch, hops, cells]], and
    the (rows, cols) those cells make. None without."""
    names = {layer.name for layer in model.layers}
    if "attention" in names:
        weights = model.get_layer("attention").output[1]
        grid = tuple(model.get_layer("cells").input.shape[1:3])
    else:  # a fusion that finds cells itself (the referent fusion; a user's own)
        layer = next((x for x in model.layers if hasattr(x, "where_it_looks")), None)
        if layer is None:
            return None
        weights = _WhereItLooks(layer, name="where_it_looks")(layer.input)
        grid = layer.looked_grid(layer.input[1].shape)
    return keras.Model(model.inputs, [model.outputs[0], weights]), grid


class _WhereItLooks(keras.layers.Layer):
    """A fusion's own attention weights, as a layer of the explaining model (the fusion's
    weights, shared)."""

    def __init__(self, fusion: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.fusion = fusion
        self.supports_masking = True  # the word states come masked; the ids mark padding

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, inputs):
        return self.fusion.where_it_looks(inputs)
