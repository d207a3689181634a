"""The lecture's gradient argument, measured by the toolkit (issue 38): long questions
whose answer is their first word, the opt-in log of the gradient reaching each word,
and `vqa compare`'s gradient table; the `rnn` config on a freshly generated scenes set."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from data_prep import long_questions, scenes
from vqa.cli import main
from vqa.config import load_config
from vqa.runs import files

CONFIGS = ROOT / "experiments" / "configs" / "gradient-flow"
FRESH_SEED = 7919  # no committed result used it


def test_long_questions_are_answered_by_their_first_word_only(tmp_path):
    data = long_questions.prepare(tmp_path / "data", images=30, seed=3)
    q = data.questions
    words = q["question"].str.split()
    assert (words.str[0] == q["answer"]).all()
    assert words.str.len().between(20, 40).all()
    assert (words.str[-4:].str.join(" ") == "which colour came first").all()
    # The first colour is said again later in many questions, and other colours too:
    # counting words does not give the answer.
    later = [set(w[1:]) & set(long_questions.COLOURS) for w in words]
    assert sum(a in s for a, s in zip(q["answer"], later)) > len(q) // 4
    assert sum(len(s - {a}) > 0 for a, s in zip(q["answer"], later)) > len(q) * 3 // 4
    bucket = [
        next(f"{lo}-{hi} words" for lo, hi in long_questions.BUCKETS if lo <= n <= hi)
        for n in words.str.len()
    ]
    assert list(q["question_type"]) == bucket
    assert set(data.split("test")["image_id"]) == {f"test/{i:06d}" for i in range(27, 30)}
    again = long_questions.prepare(tmp_path / "again", images=30, seed=3)
    assert again.questions.equals(q)


@pytest.fixture(scope="module")
def rnn_scenes_run(tmp_path_factory):
    """The rnn config, one epoch on 40 freshly generated scenes, through the CLI; in
    RUNS/<dataset>/rnn, where `vqa compare` finds it (RUNS: the run's grandparent)."""
    root = tmp_path_factory.mktemp("rnn")
    data = scenes.prepare(root / "data", images=40, seed=FRESH_SEED)
    run = root / "runs" / data.name / "rnn"
    argv = ["train", str(data.root), "--config", str(CONFIGS / "rnn.yaml"), "--epochs", "1"]
    assert main([*argv, "--out", str(run), "--no-bundle"]) == 0  # no test here asks
    return data, run


def test_the_rnn_config_trains_one_epoch_on_fresh_scenes_and_evaluates(rnn_scenes_run, capsys):
    data, run = rnn_scenes_run
    assert load_config(run / files.CONFIG).model.question_encoder == "rnn"
    assert main(["evaluate", str(run), str(data.root), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_questions"] == len(data.split("test"))
    assert set(metrics["per_question_type"]) == set(data.split("test")["question_type"])


def test_the_gradient_flow_log_has_every_probe_and_every_word(rnn_scenes_run):
    _, run = rnn_scenes_run
    table = pd.read_csv(run / files.GRADIENT_FLOW)
    steps = json.loads((run / files.TRAINING).read_text())
    assert table["step"].iloc[0] == 0 and (np.diff(table["step"]) > 0).all()  # before the first
    assert (table["epoch"] == 1).all() and len(table) >= 2
    assert (table["global_norm"] > 0).all() and np.isfinite(table["first_to_last"]).all()
    words = [c for c in table.columns if c.startswith("word_")]
    assert words == [f"word_{t:02d}" for t in range(len(words))]
    assert (table[words[0]] > 0).all()
    assert steps["epochs_run"] == 1
    assert (run / files.GRADIENT_FLOW_PLOT).stat().st_size > 0
    assert any((run / files.TENSORBOARD / "gradient_flow").iterdir())


def test_each_questions_word_gradients_do_not_depend_on_the_batch(rnn_scenes_run):
    """The log is of each question's own loss: one half of a batch gives the same norms
    alone as within the whole batch; padding gets none."""
    import keras

    from vqa.answering import Answerer
    from vqa.models.builder import model_inputs
    from vqa.training.gradient_flow import summarize, word_gradients

    data, run = rnn_scenes_run
    answerer = Answerer.load(run)
    model = answerer.model
    model.compile(loss=keras.losses.CategoricalCrossentropy())
    questions = data.split("train").head(8)
    tokens = np.stack([answerer._encode(q).ids for q in questions["question"]])
    pixels = np.stack(
        [answerer.preprocessing.pixels(data.image_path(i)) for i in questions["image_id"]]
    )
    y = np.eye(len(answerer.answers.tokens), dtype="float32")[
        [answerer.answers.index.get(a, 0) for a in questions["answer"]]
    ]
    gradients = word_gradients(model)
    whole, _ = gradients(model_inputs(model, pixels, tokens), y)
    half, _ = gradients(model_inputs(model, pixels[:4], tokens[:4]), y[:4])
    np.testing.assert_allclose(half, whole[:4], rtol=1e-4, atol=1e-8)
    assert (whole[tokens == 0] == 0).all() and (whole[tokens != 0] > 0).all()
    lengths = (tokens != 0).sum(1)
    row = summarize(whole, lengths)
    expected = whole[:, 0].mean() / whole[np.arange(8), lengths - 1].mean()
    assert row["first_to_last"] == pytest.approx(expected)
    assert np.isnan(summarize(np.zeros_like(whole), lengths)["first_to_last"])  # none at all


def test_compare_tables_the_gradient_flow_of_each_variant(rnn_scenes_run, tmp_path):
    from vqa.evaluation.compare import compare

    data, run = rnn_scenes_run  # compare trains lstm-clip, and finds rnn trained
    configs = [CONFIGS / "rnn.yaml", CONFIGS / "lstm-clip.yaml"]
    before = (run / files.MODEL).stat().st_mtime_ns
    table = compare(data, configs, runs=run.parents[1], results=tmp_path / "out", epochs=1)
    assert (run / files.MODEL).stat().st_mtime_ns == before  # not trained again
    overall = table[table["question_type"] == "overall"].set_index("variant")
    assert (overall.loc[["rnn", "lstm-clip"], "largest_norm"] > 0).all()
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "| variant | first/last before training | first/last after | largest norm |" in readme
    assert "![gradient-flow](gradient-flow.png)" in readme
    assert (tmp_path / "out" / "gradient-flow.png").stat().st_size > 0


def test_a_caption_decoder_logs_the_gradient_from_its_last_word(tmp_path):
    """One epoch of the squares captioner with the log on, through the CLI."""
    from test_captioning import CONFIG, _write_dataset

    data = _write_dataset(tmp_path / "data")
    config = tmp_path / "rnn.yaml"
    text = CONFIG.replace("DECODER", "attention").replace(
        "decoder_dim", "decoder_cell: rnn, decoder_dim"
    )
    config.write_text(text.replace("patience: 15}", "patience: 15, log_gradient_flow: true}"))
    run = tmp_path / "run"
    argv = ["train", str(data), "--config", str(config), "--epochs", "1", "--out", str(run)]
    assert main(argv) == 0
    table = pd.read_csv(run / files.GRADIENT_FLOW)
    assert table["step"].iloc[0] == 0 and len(table) >= 2 and (table["epoch"] == 1).all()
    assert (table["global_norm"] > 0).all() and np.isfinite(table["first_to_last"]).all()
    assert (table["word_00"] > 0).all()  # the last word's loss reaches the first step
    assert (run / files.GRADIENT_FLOW_PLOT).stat().st_size > 0
    assert any((run / files.TENSORBOARD / "gradient_flow").iterdir())


def test_each_captions_last_word_gradients_do_not_depend_on_the_batch():
    """The gradient of each caption's own last-word loss: half a batch gives the same
    norms alone; none past a caption's end, some at every step before it."""
    import keras

    from vqa.config import ModelConfig
    from vqa.models import build_captioner
    from vqa.training.gradient_flow import caption_gradients

    keras.utils.set_random_seed(0)
    config = ModelConfig(
        image_encoder="small_cnn",
        image_size=32,
        cnn_filters=(4, 8),
        image_dim=8,
        attention_dim=8,
        decoder="attention",
        decoder_cell="gru",
        decoder_dim=8,
        word_dim=4,
        max_caption_length=6,
        dropout=0.0,
    )
    model = build_captioner(config, vocab_size=12)
    model.compile(loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    lengths = np.array([6, 3, 1, 5, 2, 6])
    y = np.where(np.arange(6)[None] < lengths[:, None], rng.integers(3, 12, (6, 6)), 0)
    x = {
        "image": rng.integers(0, 256, (6, 32, 32, 3)).astype("float32"),
        "caption": np.concatenate([np.full((6, 1), 1), y[:, :-1]], 1).astype("int32"),
    }
    gradients = caption_gradients(model)
    whole, total = gradients(x, y.astype("int32"))
    half, _ = gradients({k: v[:3] for k, v in x.items()}, y[:3].astype("int32"))
    np.testing.assert_allclose(half, whole[:3], rtol=1e-4, atol=1e-8)
    assert (whole[y == 0] == 0).all() and (whole[y != 0] > 0).all() and total > 0
    # The global norm is of the loss training takes its step on: Keras' reduction over
    # the padded words, and the attention penalty.
    import tensorflow as tf

    weights = (y != 0).astype("float32")
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x, y, model(x, training=False), weights)
    expected = tf.linalg.global_norm(tape.gradient(loss, model.trainable_variables))
    assert float(total) == pytest.approx(float(expected), rel=1e-4)
