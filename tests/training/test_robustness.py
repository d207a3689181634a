"""Training that survives kill -9, is reproducible, stops on a bad loss, and loads
only what it wrote (issue 7, parts 1, 2, 4 and 5)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, TINY_CONFIG, make_tiny_dataset

from vqa import Answerer, evaluate_run
from vqa.cli import main
from vqa.config import Config, save_config
from vqa.errors import ConfigError, RunDirError, TrainingError
from vqa.runs import files
from vqa.training import RunCheckpoint, train

# On the 90-image set (about 20 steps an epoch) compiled steps are faster than eager ones
# (5 epochs: 5.5 s against 9.7): the graph's tracing pays for itself.
# batch_norm_images: the statistics re-estimated before each validation, from the same
# images in the resumed run as in the uninterrupted one.
SLOW_CONFIG = TINY_CONFIG.with_train(epochs=5, run_eagerly=False, batch_norm_images=24)


@pytest.fixture(scope="module")
def larger_dataset(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny90", n_images=90)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, larger_dataset):
    run = tmp_path_factory.mktemp("runs") / "whole"
    train(larger_dataset.root, run, SLOW_CONFIG, verbose=0)
    evaluate_run(run, larger_dataset, "test")
    return run


def test_kill_9_mid_training_then_resume_ends_like_an_uninterrupted_run(
    larger_dataset, uninterrupted, tmp_path, capsys
):
    """A real process: a second train on its run is refused while it trains; killed -9
    in epoch 3, the run resumes to the uninterrupted run's history and predictions."""
    run, config = tmp_path / "run", tmp_path / "config.yaml"
    save_config(SLOW_CONFIG, config)
    state = run / files.CHECKPOINT_DIR / files.STATE
    argv = ["train", str(larger_dataset.root), "--config", str(config), "--out", str(run)]
    argv.append("--no-bundle")  # nothing here asks: the bundle is test_end_to_end's
    proc = subprocess.Popen(
        [sys.executable, "-m", "vqa", *argv],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def wait_for(epochs: int) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if state.is_file() and json.loads(state.read_text())["next_epoch"] >= epochs:
                return
            time.sleep(0.02)

    try:
        wait_for(1)
        assert proc.poll() is None, "the first run ended before a second could start"
        assert main([*argv, "--resume"]) == 1  # the run is in use: refused, in one line
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is in use: another vqa process is training" in err
        with pytest.raises(RunDirError, match="is in use"):
            train(larger_dataset.root, run, SLOW_CONFIG, verbose=0)
        wait_for(2)
        assert proc.poll() is None, "training ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)  # during epoch 3 (index 2), or right after 2
    finally:
        proc.kill()
        proc.wait()
    killed_at = json.loads(state.read_text())["next_epoch"]
    assert 2 <= killed_at < SLOW_CONFIG.train.epochs
    assert not (run / files.MODEL).exists() and not (run / files.TRAINING).exists()

    assert main([*argv, "--resume"]) == 0  # the kernel dropped the lock with the process
    evaluate_run(run, larger_dataset, "test")
    resumed = pd.read_csv(run / files.HISTORY)
    whole = pd.read_csv(uninterrupted / files.HISTORY)
    assert resumed["epoch"].tolist() == list(range(1, SLOW_CONFIG.train.epochs + 1))
    # Epochs before the kill were not redone, and the rest continued the same training.
    pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), whole.drop(columns="seconds"))
    assert (run / files.PREDICTIONS).read_bytes() == (
        uninterrupted / files.PREDICTIONS
    ).read_bytes()
    assert json.loads((run / files.METRICS).read_text()) == json.loads(
        (uninterrupted / files.METRICS).read_text()
    )


def test_two_seeded_runs_give_identical_predictions(uninterrupted, watched_run):
    run, _ = watched_run
    assert (run / files.PREDICTIONS).read_bytes() == (
        uninterrupted / files.PREDICTIONS
    ).read_bytes()
    summary = json.loads((run / files.TRAINING).read_text())
    assert summary["seed"] == SLOW_CONFIG.train.seed
    assert summary["versions"]["keras"] == keras.__version__
    assert summary["versions"]["numpy"] == np.__version__
    assert summary["versions"]["python"] == sys.version.split()[0]


def test_another_seed_gives_another_model(larger_dataset, uninterrupted, tmp_path):
    run = tmp_path / "seed2"
    train(larger_dataset.root, run, SLOW_CONFIG.with_train(seed=2, epochs=1), verbose=0)
    first = pd.read_csv(uninterrupted / files.HISTORY).loc[0, "loss"]
    assert pd.read_csv(run / files.HISTORY).loc[0, "loss"] != first


def test_a_nan_loss_stops_and_keeps_the_last_good_epoch(tiny_dataset, tmp_path, monkeypatch):
    run = tmp_path / "run"
    begin = RunCheckpoint.on_epoch_begin

    def poisoned(self, epoch, logs=None):
        begin(self, epoch, logs)
        if epoch >= 1:  # after epoch 1's checkpoint: a weight turns NaN, as a diverging step would
            weight = self.model.trainable_weights[0]
            weight.assign(np.full(weight.shape, np.nan, weight.dtype))

    monkeypatch.setattr(RunCheckpoint, "on_epoch_begin", poisoned)
    with pytest.raises(
        TrainingError,
        match=r"(loss became nan at epoch 2, step \d+|weights "
        r"became NaN or infinite during epoch 2 \(.+\)); "
        r"training stopped and it keeps its last good "
        r"checkpoint \(epoch 1\)",
    ):
        train(tiny_dataset.root, run, TINY_CONFIG.with_train(epochs=3), verbose=0)
    state = json.loads((run / files.CHECKPOINT_DIR / files.STATE).read_text())
    assert state["next_epoch"] == 1
    assert (run / files.CHECKPOINT_DIR / state["last_file"]).is_file()
    assert pd.read_csv(run / files.HISTORY)["epoch"].tolist() == [1]  # no NaN epoch logged

    monkeypatch.setattr(RunCheckpoint, "on_epoch_begin", begin)  # the cause gone: resume
    summary = train(tiny_dataset.root, run, TINY_CONFIG.with_train(epochs=3), verbose=0)
    assert summary["epochs_run"] == 3
    assert np.isfinite(pd.read_csv(run / files.HISTORY)["loss"]).all()


def test_a_nan_loss_is_one_line_on_the_command_line(tiny_dataset, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    save_config(TINY_CONFIG.with_train(learning_rate=1e30, epochs=1), config)
    code = main(
        ["train", str(tiny_dataset.root), "--config", str(config), "--out", str(tmp_path / "run")]
    )
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.startswith("error: The training loss became") and "\n" not in err


@pytest.mark.parametrize(
    "extra, match",
    [
        ([], "Nothing to resume in"),
        (["--overwrite"], "contradict"),
    ],
)
def test_resume_flag_errors(tiny_dataset, tmp_path, capsys, extra, match):
    code = main(
        ["train", str(tiny_dataset.root), "--out", str(tmp_path / "none"), "--resume", *extra]
    )
    assert code != 0
    assert match in capsys.readouterr().err


def _copy_run(run: Path, to: Path) -> Path:
    to.mkdir()
    for f in run.iterdir():
        if f.is_file():
            (to / f.name).write_bytes(f.read_bytes())
    return to


def test_a_model_file_with_a_lambda_layer_is_refused(tiny_run, tmp_path):
    run = _copy_run(tiny_run[0], tmp_path / "tampered")
    model = keras.models.load_model(run / files.MODEL, compile=False)
    outputs = keras.layers.Lambda(lambda x: x * 1.0, name="sneaky")(model.outputs[0])
    keras.Model(model.inputs, outputs).save(run / files.MODEL)
    with pytest.raises(RunDirError, match=r"Cannot load .*model\.keras.*(Lambda|safe_mode)"):
        Answerer.load(run)


def test_a_model_file_with_an_altered_config_is_refused(tiny_run, tmp_path):
    run = _copy_run(tiny_run[0], tmp_path / "altered")
    with zipfile.ZipFile(tiny_run[0] / files.MODEL) as old:
        entries = {name: old.read(name) for name in old.namelist()}
    config = json.loads(entries["config.json"])
    # Point a layer at a function of another module: arbitrary code on load.
    config["config"]["layers"][-1]["config"]["activation"] = {
        "module": "os",
        "class_name": "function",
        "config": "system",
        "registered_name": "function",
    }
    entries["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(run / files.MODEL, "w") as new:
        for name, data in entries.items():
            new.writestr(name, data)
    with pytest.raises(RunDirError, match=r"Cannot load .*model\.keras"):
        Answerer.load(run)


def test_a_two_hop_model_saved_before_glimpses_were_concatenated_is_refused_clearly(
    tiny_run, tmp_path, monkeypatch
):
    from vqa.models import build_model
    from vqa.models.attention import StackedAttention

    run = _copy_run(tiny_run[0], tmp_path / "older")
    # The layer as it was: only the last hop's glimpse went on to the fusion.
    call, shape = StackedAttention.call, StackedAttention.compute_output_shape
    monkeypatch.setattr(
        StackedAttention,
        "call",
        lambda self, inputs: (lambda g, w: (g[:, -inputs[1].shape[-1] :], w))(*call(self, inputs)),
    )
    monkeypatch.setattr(
        StackedAttention,
        "compute_output_shape",
        lambda self, s: ((s[1][0], s[1][-1]), shape(self, s)[1]),
    )
    older = build_model(replace(TINY_CONFIG.model, attention_hops=2), vocab_size=10, num_answers=3)
    older.save(run / files.MODEL)
    monkeypatch.undo()
    with pytest.raises(
        RunDirError,
        match=r"does not run with this vqa .*project_image.*"
        r"--init-from",
    ):
        Answerer.load(run)


@keras.saving.register_keras_serializable(package="tests")
class _EachQuestionsRow(keras.layers.Layer):
    """[batch, L] questions -> [batch] 0, 1, 2, ...: one image per question."""

    def call(self, question):
        return keras.ops.arange(keras.ops.shape(question)[0], dtype="int32")

    def compute_output_shape(self, shape):
        return (shape[0],)


def test_a_model_saved_before_about_image_still_answers_and_evaluates(
    tiny_run, tiny_dataset, tmp_path
):
    """Models saved before the "about_image" input take one image per question."""
    run = _copy_run(tiny_run[0], tmp_path / "older")
    model = keras.models.load_model(run / files.MODEL, compile=False)
    image = keras.Input(next(t for t in model.inputs if t.name == "image").shape[1:], name="image")
    question = keras.Input((None,), dtype="int32", name="question")
    older = keras.Model(
        {"image": image, "question": question},
        model({"image": image, "about_image": _EachQuestionsRow()(question), "question": question}),
    )
    older.save(run / files.MODEL)
    answerer = Answerer.load(run)
    assert "about_image" not in {t.name for t in answerer.model.inputs}
    image_file = next((tiny_dataset.root / "images").rglob("*.png"))
    now = Answerer.load(tiny_run[0])
    asked = ["what color is the shape?", "what shape is it?"]
    for old, new in zip(
        answerer.answer_batch([image_file] * 2, asked), now.answer_batch([image_file] * 2, asked)
    ):
        assert old.top_k[0][0] == new.top_k[0][0]
        assert old.probability == pytest.approx(new.probability, rel=1e-5)
    old, new = (evaluate_run(r, tiny_dataset, "test") for r in (run, tiny_run[0]))
    assert old["overall"] == new["overall"] and old["per_question_type"] == new["per_question_type"]
    assert (run / files.PREDICTIONS).read_text() == (tiny_run[0] / files.PREDICTIONS).read_text()


def test_nan_weights_behind_a_finite_loss_stop_before_the_epoch_is_kept(tmp_path):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, name="d")])
    (tmp_path / files.CHECKPOINT_DIR).mkdir()
    state = {
        "next_epoch": 0,
        "best": -1.0,
        "best_epoch": -1,
        "best_file": None,
        "last_file": None,
        "wait": 0,
        "stopped_early": False,
    }
    checkpoint = RunCheckpoint(tmp_path, patience=5, state=state)
    checkpoint.set_model(model)
    checkpoint.on_epoch_begin(0)
    checkpoint.on_epoch_end(0, {"val_vqa_score": 0.5, "loss": 1.0})
    model.get_layer("d").set_weights([np.full((1, 1), np.nan, "float32"), np.zeros(1)])
    checkpoint.on_epoch_begin(1)
    with pytest.raises(
        TrainingError,
        match=r"weights became NaN or infinite during epoch 2 "
        r"\(\S*d/kernel\).*last good checkpoint \(epoch 1\)",
    ):
        checkpoint.on_epoch_end(1, {"val_vqa_score": 0.6, "loss": 1.0})
    assert state["next_epoch"] == 1 and state["last_file"] == "last-epoch0.keras"
    assert pd.read_csv(tmp_path / files.HISTORY)["epoch"].tolist() == [1]


class _FirstWeights(keras.callbacks.Callback):
    """Keeps the model's weights as fit found them."""

    def on_train_begin(self, logs=None):
        self.weights = [np.array(w) for w in self.model.get_weights()]


class _StopAfterFirstEpoch(keras.callbacks.Callback):
    """Interrupts fit once the first epoch is checkpointed."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def _two_dense(inputs: int, second: int) -> keras.Model:
    x = keras.Input((inputs,))
    y = keras.layers.Dense(second, name="b")(keras.layers.Dense(3, name="a")(x))
    return keras.Model(x, y)


def test_copy_weights_leaves_only_the_reshaped_weights_at_random():
    from vqa.training import copy_weights

    older, newer = _two_dense(4, 2), _two_dense(5, 2)  # a's input grew, as a layer can
    start = newer.get_layer("a").kernel.numpy()
    assert copy_weights(older, newer) == ["a/kernel"]
    np.testing.assert_array_equal(newer.get_layer("a").kernel.numpy(), start)
    for new, old in zip(newer.weights[1:], older.weights[1:]):
        np.testing.assert_array_equal(new.numpy(), old.numpy())
    with pytest.raises(ConfigError, match="not the same network"):
        copy_weights(older, keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def test_init_from_a_run_without_word_attention_starts_where_it_was(
    tiny_dataset, tiny_attention_run, tmp_path
):
    from vqa.training import copy_weights

    source = tiny_attention_run
    from vqa.models import build_model

    config = Config(
        replace(TINY_CONFIG.model, attention_hops=2, attention_words=True), TINY_CONFIG.train
    ).with_train(epochs=1)
    first = _FirstWeights()
    train(
        tiny_dataset.root,
        tmp_path / "words",
        config,
        verbose=0,
        callbacks=[first],
        init_from=source,
    )
    trained = keras.models.load_model(source / files.MODEL, compile=False)
    grown = build_model(
        config.model,
        trained.get_layer("question_encoder").get_layer("word_embedding").input_dim,
        trained.get_layer("answer").units,
    )
    grown.set_weights(first.weights)
    ids = np.array([[2, 3, 4, 0, 0, 0, 0, 0]], dtype="int32")
    pixels = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3)).astype("float32")
    inputs = {"image": pixels, "about_image": np.zeros(1, "int32"), "question": ids}
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(grown(inputs)),
        keras.ops.convert_to_numpy(trained(inputs)),
        rtol=1e-5,
    )
    with pytest.raises(ConfigError, match="attention have weights this one lacks"):
        copy_weights(grown, trained)  # words cannot be dropped
    image = next((tiny_dataset.root / "images").rglob("*.png"))
    result = Answerer.load(tmp_path / "words").answer(image, "what color is the shape?")
    assert np.isfinite(result.attention).all() and result.top_k


def test_init_from_starts_at_the_source_runs_weights_and_vocabularies(
    tiny_dataset, tiny_run, tmp_path
):
    source, _ = tiny_run
    first, run = _FirstWeights(), tmp_path / "on"
    config = TINY_CONFIG.with_train(epochs=2)
    with pytest.raises(KeyboardInterrupt):
        train(
            tiny_dataset.root,
            run,
            config,
            verbose=0,
            callbacks=[first, _StopAfterFirstEpoch()],
            init_from=source,
        )
    # The source's trained weights, not the seed's fresh ones.
    trained = keras.models.load_model(source / files.MODEL, compile=False).get_weights()
    assert len(first.weights) == len(trained)
    assert all(np.array_equal(a, b) for a, b in zip(first.weights, trained))
    for name in (files.QUESTION_VOCAB, files.ANSWER_VOCAB):
        assert (run / name).read_text() == (source / name).read_text()
    # Stopped after its first epoch and resumed by a later call without the option, the
    # run still says where it started (the state records it).
    assert train(tiny_dataset.root, run, config, verbose=0)["initialised_from"] == str(source)


def test_init_from_refuses_another_model_before_making_the_run(
    tiny_dataset, tiny_run, tmp_path, capsys
):
    source, _ = tiny_run
    config = tmp_path / "config.yaml"
    save_config(
        Config(replace(TINY_CONFIG.model, fusion="concat", question_dim=8), TINY_CONFIG.train),
        config,
    )
    code = main(
        [
            "train",
            str(tiny_dataset.root),
            "--config",
            str(config),
            "--out",
            str(tmp_path / "run"),
            "--init-from",
            str(source),
        ]
    )
    assert code != 0
    err = capsys.readouterr().err
    assert "model.question_dim, model.fusion" in err and str(source) in err
    assert not (tmp_path / "run").exists()
    with pytest.raises(RunDirError, match="Not a run directory"):
        train(tiny_dataset.root, tmp_path / "run", TINY_CONFIG, init_from=tmp_path / "nothing")
    same = shutil.copytree(source, tmp_path / "same")
    with pytest.raises(ConfigError, match="cannot start from itself"):
        train(tiny_dataset.root, same, TINY_CONFIG, overwrite=True, init_from=same)
    assert (same / files.MODEL).is_file()  # refused before --overwrite removed anything


class _Snapshots:
    """Copies the run directory, as a kill -9 would leave it, at four points of epoch
    index 1's checkpoint: after its model's temporary file is written, before its rename
    ("model-written"); with every model in place, before the state, the commit, is
    written ("before-commit"); after the state's temporary file is written, before its
    rename ("mid-commit"); and after the commit ("after-commit")."""

    POINTS = ("model-written", "before-commit", "mid-commit", "after-commit")

    def __init__(self, run: Path, to: Path):
        self.run, self.to = run, to

    def take(self, point: str) -> None:
        shutil.copytree(self.run, self.to / point)  # what the disk holds at that moment

    def patch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import vqa.training.checkpoint as checkpoint
        from vqa.runs import atomic

        rename, write_json = atomic.atomic_write, atomic.write_json

        @contextmanager
        def watched(path):
            with rename(path) as tmp:
                yield tmp
                if Path(path).name == "last-epoch1.keras":
                    self.take("model-written")
                if Path(path).name == files.STATE and _next_epoch(tmp) == 2:
                    self.take("mid-commit")

        def committing(data, path):
            commit = Path(path).name == files.STATE and data["next_epoch"] == 2
            if commit:
                self.take("before-commit")
            write_json(data, path)
            if commit:
                self.take("after-commit")

        monkeypatch.setattr(atomic, "atomic_write", watched)
        monkeypatch.setattr(checkpoint, "atomic_write", watched)
        monkeypatch.setattr(atomic, "write_json", committing)


def _next_epoch(state: Path) -> int:
    return json.loads(state.read_text())["next_epoch"]


@pytest.fixture(scope="module")
def watched_run(tmp_path_factory, larger_dataset):
    """A second seeded training of SLOW_CONFIG, run to its end, whose run directory was
    copied at each of _Snapshots.POINTS on the way: (the run, {point: copy})."""
    where = tmp_path_factory.mktemp("watched")
    snapshots = _Snapshots(where / "run", where / "killed")
    with pytest.MonkeyPatch.context() as monkeypatch:
        snapshots.patch(monkeypatch)
        train(larger_dataset.root, snapshots.run, SLOW_CONFIG, verbose=0)
    evaluate_run(snapshots.run, larger_dataset, "test")
    return snapshots.run, {p: snapshots.to / p for p in _Snapshots.POINTS}


@pytest.mark.parametrize("point", _Snapshots.POINTS)
def test_a_kill_inside_a_checkpoint_then_resume_ends_like_an_uninterrupted_run(
    larger_dataset, uninterrupted, watched_run, tmp_path, point
):
    """Each copy of _Snapshots resumed: in this process (test_kill_9_mid_training_...
    kills a real one)."""
    crashed = watched_run[1][point]
    state = json.loads((crashed / files.CHECKPOINT_DIR / files.STATE).read_text())
    left = [p.name for p in (crashed / files.CHECKPOINT_DIR).iterdir()]
    assert not (crashed / files.MODEL).exists()  # only a finished run has a model to answer with
    committed = 2 if point == "after-commit" else 1  # epoch index 1 was committed or not
    assert state["next_epoch"] == committed
    if point == "before-commit":  # the epoch's model is written, and not counted
        assert "last-epoch1.keras" in left and state["last_file"] == "last-epoch0.keras"
    elif point != "after-commit":  # the kill left a half-made temporary file behind
        assert any(".tmp" in name for name in left), left
    kept = pd.read_csv(crashed / files.HISTORY)

    config = tmp_path / "config.yaml"
    save_config(SLOW_CONFIG, config)
    argv = ["train", str(larger_dataset.root), "--config", str(config), "--out", str(crashed)]
    argv.append("--no-bundle")  # nothing here asks: the bundle is test_end_to_end's
    assert main([*argv, "--resume"]) == 0
    resumed = pd.read_csv(crashed / files.HISTORY)
    whole = pd.read_csv(uninterrupted / files.HISTORY)
    pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), whole.drop(columns="seconds"))
    # The committed epochs were not redone.
    assert resumed["seconds"][:committed].tolist() == kept["seconds"][:committed].tolist()
    # The same model to the bit, so the same predictions (the kill -9 test evaluates).
    weights = [
        keras.models.load_model(run / files.MODEL, compile=False).get_weights()
        for run in (crashed, uninterrupted)
    ]
    assert all(np.array_equal(a, b) for a, b in zip(*weights))
    assert (crashed / files.MODEL).is_file() and not (crashed / files.CHECKPOINT_DIR).exists()


def test_a_run_resumes_compiled_or_eagerly_as_asked(tiny_dataset, tmp_path):
    """run_eagerly is how steps execute, not what is trained: a crashed run may resume
    eagerly to be debugged (or compiled again), where another config is refused."""
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_dataset.root, run, TINY_CONFIG, verbose=0, callbacks=[_StopAfterFirstEpoch()])
    summary = train(tiny_dataset.root, run, TINY_CONFIG.with_train(run_eagerly=False), verbose=0)
    assert summary["epochs_run"] == TINY_CONFIG.train.epochs
