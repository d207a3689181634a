"""Hard attention (issue 38): one sampled cell a hop, trained with REINFORCE through
ReinforcedModel's loss; the most probable cell at inference; a VQA config with it trains,
answers, explains the chosen cells and exports."""

import keras
import numpy as np
import pytest
from conftest import ROOT

from vqa.config import Config, ModelConfig
from vqa.errors import ConfigError
from vqa.models.attention import ATTENTIONS, HardAttention, ReinforcedModel, StackedAttention
from vqa.models.losses import soft_crossentropy

CELLS, DIM, CLASSES = 6, 8, 4


def _toy(n: int, seed: int):
    """Six cells of noise, one of them marked (feature 0 = 3) and carrying the answer's
    class one-hot in features 1-4: only a glimpse of the marked cell answers."""
    rng = np.random.default_rng(seed)
    cells = rng.normal(0, 0.3, (n, CELLS, DIM)).astype("float32")
    where = rng.integers(0, CELLS, n)
    label = rng.integers(0, CLASSES, n)
    cells[np.arange(n), where, 0] = 3.0
    cells[np.arange(n), where, 1 : 1 + CLASSES] += np.eye(CLASSES)[label]
    return cells, np.eye(CLASSES, dtype="float32")[label], where


def _model(attention: type, model_class: type) -> keras.Model:
    question = keras.Input((4,), name="question")
    cells = keras.Input((CELLS, DIM), name="cells")
    glimpse, weights = attention(16, 1, name="attention")([question, cells])
    answers = keras.layers.Dense(CLASSES, activation="softmax", name="answer")(glimpse)
    model = model_class({"question": question, "cells": cells}, answers)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=soft_crossentropy)
    return model


def _score_gradient(model, x, y) -> float:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=True), training=True)
    scorer = model.get_layer("attention").score_cells[0].kernel
    gradient = tape.gradient(loss, scorer.value)
    return 0.0 if gradient is None else float(tf.norm(gradient))  # None: no path at all


def test_the_sampled_cell_passes_no_gradient_and_reinforce_gives_one():
    keras.utils.set_random_seed(0)
    cells, y, _ = _toy(64, 0)
    x = {"question": np.ones((64, 4), "float32"), "cells": cells}
    plain = _model(HardAttention, keras.Model)  # the cross-entropy alone
    assert _score_gradient(plain, x, y) == 0.0
    reinforced = _model(HardAttention, ReinforcedModel)
    reinforced.set_weights(plain.get_weights())
    assert _score_gradient(reinforced, x, y) > 0.0
    # The term moves the gradient only: the logged loss is the cross-entropy.
    predicted = reinforced(x, training=True)
    logged = reinforced.compute_loss(x=x, y=y, y_pred=predicted, training=True)
    assert float(logged) == pytest.approx(float(np.mean(soft_crossentropy(y, predicted))))


def test_reinforce_learns_where_to_look():
    """From chance (1 cell in 6) to looking at the marked cell, by reward alone: the
    classifier can only answer from the cell it was given."""
    keras.utils.set_random_seed(1)
    cells, y, where = _toy(2048, 1)
    model = _model(HardAttention, ReinforcedModel)
    x = {"question": np.ones((2048, 4), "float32"), "cells": cells}
    model.fit(x, y, batch_size=64, epochs=12, verbose=0)
    test_cells, test_y, test_where = _toy(512, 2)
    test_x = {"question": np.ones((512, 4), "float32"), "cells": test_cells}
    probe = keras.Model(model.inputs, model.get_layer("attention").output[1])
    chosen = np.asarray(probe.predict(test_x, verbose=0))[:, 0]  # [n, cells], one-hot
    assert set(np.unique(chosen)) <= {0.0, 1.0} and (chosen.sum(-1) == 1).all()
    assert (chosen.argmax(-1) == test_where).mean() > 0.9
    accuracy = (model.predict(test_x, verbose=0).argmax(-1) == test_y.argmax(-1)).mean()
    assert accuracy > 0.9


def test_hard_attention_is_a_registered_attention_and_needs_hops():
    assert ATTENTIONS["soft"] is StackedAttention and ATTENTIONS["hard"] is HardAttention
    with pytest.raises(ConfigError, match="attention: hard needs attention_hops >= 1"):
        ModelConfig(attention="hard")
    with pytest.raises(ConfigError, match="Unknown attention 'hrad'.*Did you mean 'hard'"):
        from vqa.models.builder import build_model

        build_model(ModelConfig(attention="hrad", attention_hops=1), 10, 3, grid_shape=(2, 2, 4))
    with pytest.raises(ValueError, match="entropy must be >= 0"):
        HardAttention(8, 1, entropy=-1)


def test_a_hard_attention_run_trains_answers_explains_and_exports(tiny_dataset, tmp_path):
    from dataclasses import replace

    from conftest import TINY_CONFIG, draw_shape

    from vqa import Answerer
    from vqa.export import export_run
    from vqa.runtime import load
    from vqa.training import train

    model = replace(TINY_CONFIG.model, attention="hard", attention_hops=2)
    train(tiny_dataset.root, tmp_path / "run", Config(model, TINY_CONFIG.train), verbose=0)
    answerer = Answerer.load(tmp_path / "run")
    assert isinstance(answerer.model, ReinforcedModel)  # reloaded in safe mode
    image = draw_shape("red", "circle")
    result = answerer.answer(image, "what shape is in the image?")
    hops = result.hop_attention.reshape(2, -1)  # each hop's chosen cell (ties share)
    assert np.allclose(hops.sum(-1), 1.0)
    assert ((hops == 0) | (hops == hops.max(-1, keepdims=True))).all()
    info = export_run(tmp_path / "run", tmp_path / "bundle")
    assert max(info["check"]["max_abs_difference"].values()) < 1e-3
    bundle = load(tmp_path / "bundle").answer(image, "what shape is in the image?")
    assert bundle.answer == result.answer


def test_the_hard_caption_config_trains_one_epoch_on_fresh_scenes_and_evaluates(tmp_path, capsys):
    """experiments/configs/scenes-captions/hard.yaml, unchanged but for its epochs,
    through the CLI; its maps are the cells it read, one a word."""
    import json

    from data_prep import scenes
    from vqa import Captioner
    from vqa.cli import main

    config = ROOT / "experiments/configs/scenes-captions/hard.yaml"
    data = scenes.prepare(tmp_path / "data", images=40, seed=7919)
    run = tmp_path / "run"
    argv = ["train", str(data.root), "--config", str(config), "--epochs", "1", "--out", str(run)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), str(data.root), "--decode", "greedy", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_images"] == len(data.split("test")["image_id"].unique())
    assert 0 <= metrics["CIDEr-D"]
    captioner = Captioner.load(run)
    assert isinstance(captioner.model, ReinforcedModel)
    image = data.image_path(data.split("test")["image_id"].iloc[0])
    for decode in ("greedy", "beam"):
        for word in captioner.caption(image, decode=decode).words:
            cells = word.attention.ravel()
            assert np.isclose(cells.sum(), 1.0) and ((cells == 0) | (cells == cells.max())).all()


def test_the_hard_decoder_refuses_the_coverage_penalty():
    from vqa.models.decoders import HardAttentionDecoder

    with pytest.raises(ValueError, match="set caption.attention_penalty: 0 with decoder: hard"):
        HardAttentionDecoder(20, penalty=1.0)


def test_the_hard_decoders_attention_learns_through_reinforce_alone():
    """The cell a word reads is drawn: no gradient reaches the attention scorer through
    the caption's cross-entropy; ReinforcedModel's term gives it one."""
    import tensorflow as tf

    from vqa.models.builder import build_captioner

    keras.utils.set_random_seed(0)
    model_config = ModelConfig(
        image_encoder="small_cnn",
        image_size=32,
        cnn_filters=(8,),
        image_dim=16,
        attention_dim=8,
        decoder="hard",
        decoder_dim=16,
        word_dim=8,
        attention_penalty=0.0,
        max_caption_length=5,
    )
    model = build_captioner(model_config, vocab_size=12)
    assert isinstance(model, ReinforcedModel)
    model.compile(loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = {
        "image": rng.integers(0, 256, (4, 32, 32, 3)).astype("float32"),
        "caption": np.array([[1, 5, 6, 7, 0]] * 4, dtype="int32"),
    }
    y = np.array([[5, 6, 7, 2, 0]] * 4, dtype="int32")
    weights = (y != 0).astype("float32")
    scorer = model.get_layer("decoder").score.kernel
    gradients = {}
    for name, loss in (
        ("cross-entropy", lambda p: keras.Model.compute_loss(model, x, y, p, weights)),
        ("reinforced", lambda p: model.compute_loss(x, y, p, weights)),
    ):
        with tf.GradientTape() as tape:
            value = loss(model(x, training=True))
        gradient = tape.gradient(value, scorer.value)
        gradients[name] = 0.0 if gradient is None else float(tf.norm(gradient))
    assert gradients["cross-entropy"] == 0.0 and gradients["reinforced"] > 0.0
