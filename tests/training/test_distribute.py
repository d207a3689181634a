"""Training on several devices or machines: vqa.training.distribute and `vqa train --strategy`.

Two logical CPU devices stand in for two GPUs: conftest splits each test process's CPU
before TensorFlow starts, so mirrored runs train in process. Two `python -m vqa train`
processes on 127.0.0.1 stand in for two machines (TensorFlow fixes its collective setup
when it starts).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tiny_backbone
from conftest import ROOT, TINY_CONFIG, make_tiny_dataset
from scipy import sparse

from data_prep.common import write_prepared
from vqa import evaluate_run
from vqa.cli import build_parser, main
from vqa.config import Config, ModelConfig, TrainConfig, save_config
from vqa.data.batches import VQABatches
from vqa.errors import ConfigError
from vqa.runs import files
from vqa.training import distribute, split_by_image, train

TIMEOUT = 300  # seconds a training subprocess may take before the test fails

# No batch norm and no dropout: a step on two replicas is then the one-device step,
# so the runs can be compared number for number. Cached grid features, no pixels.
GRID_CONFIG = Config(
    ModelConfig(
        image_encoder="pretrained",
        backbone=tiny_backbone.NAME,  # the tests' own: VQA_PLUGINS in the subprocesses
        image_dim=16,
        embedding_dim=8,
        question_dim=16,
        max_question_length=8,
        fusion_dim=16,
        classifier_dim=16,
        dropout=0.0,
    ),
    TrainConfig(
        batch_size=8,
        epochs=4,
        learning_rate=0.01,
        early_stopping_patience=4,
        validation_fraction=0.25,
        seed=1,
    ),
)
# The small CNN has batch norm, which each replica computes on its own rows.
CNN_CONFIG = Config(replace(TINY_CONFIG.model, dropout=0.0), GRID_CONFIG.train)


def _derived_dataset(base, out: Path, config: Config, drop_fit: int, drop_val: int):
    """`base` without the last `drop_fit` questions of the part fitted on and the last
    `drop_val` of the validation part (as training will split them), for batches that
    do not split evenly."""
    questions = pd.read_parquet(base.root / "questions.parquet")
    questions["answers"] = questions["answers"].map(list)
    fit_q, val_q = split_by_image(
        questions[questions["split"] == "train"],
        config.train.validation_fraction,
        config.train.seed,
    )
    dropped = [
        *fit_q["question_id"].iloc[len(fit_q) - drop_fit :],
        *val_q["question_id"].iloc[len(val_q) - drop_val :],
    ]
    return write_prepared(
        out,
        name=out.name,
        source="tests",
        image_root="images",
        questions=questions[~questions["question_id"].isin(dropped)],
        images=pd.read_parquet(base.root / "images.parquet"),
        fill=lambda tmp: shutil.copytree(base.root / "images", tmp / "images"),
    )


@pytest.fixture(scope="module")
def base_dataset(tmp_path_factory):
    """24 images: 12 fitted on, 4 for validation (48 and 16 questions), 8 for test."""
    return make_tiny_dataset(tmp_path_factory.mktemp("dist") / "base", n_images=24)


@pytest.fixture(scope="module")
def odd_validation(base_dataset, tmp_path_factory):
    """48 questions to fit on (6 batches of 8), 15 to validate on (the last batch, 7,
    is padded for two replicas); with the grid features extracted."""
    from vqa.features.extract import extract_features

    dataset = _derived_dataset(
        base_dataset,
        tmp_path_factory.mktemp("dist") / "odd-val",
        GRID_CONFIG,
        drop_fit=0,
        drop_val=1,
    )
    extract_features(dataset, GRID_CONFIG.model.backbone, progress=False)
    return dataset


@pytest.fixture(scope="module")
def one_row_last_batch(base_dataset, tmp_path_factory):
    """41 questions to fit on: the last batch has one row, none for a second replica."""
    return _derived_dataset(
        base_dataset,
        tmp_path_factory.mktemp("dist") / "one-row",
        CNN_CONFIG,
        drop_fit=7,
        drop_val=1,
    )


def _train(
    data,
    out: Path,
    config: Config,
    *args: str,
    env: dict | None = None,
    python: str = sys.executable,
) -> subprocess.Popen:
    """Start `python -m vqa train` on this source tree; its output goes to `.log`."""
    config_file = out.parent / f"{out.name}.yaml"
    save_config(config, config_file)
    path = os.pathsep.join(
        p for p in (str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH")) if p
    )
    log = tempfile.TemporaryFile("w+")
    process = subprocess.Popen(
        [
            python,
            "-m",
            "vqa",
            "train",
            str(data.root),
            "--config",
            str(config_file),
            "--out",
            str(out),
            "--no-bundle",  # no test here asks
            *args,
        ],
        env={
            **os.environ,
            "PYTHONPATH": path,
            "VQA_PLUGINS": "tiny_backbone",  # the tests' backbone, as a user's own is loaded
            "TF_CPP_MIN_LOG_LEVEL": "3",
            **(env or {}),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    process.log = log
    return process


def _finish(*processes: subprocess.Popen) -> list[str]:
    """Wait for every process; their output. When one fails or TIMEOUT passes, the
    others are killed (a worker would otherwise wait for a dead peer)."""
    deadline = time.monotonic() + TIMEOUT
    try:
        while any(p.poll() is None for p in processes):
            if time.monotonic() > deadline or any(p.poll() for p in processes):
                break
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    outputs = []
    for process in processes:
        process.log.seek(0)
        outputs.append(process.log.read())
        process.log.close()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, f"exit {process.returncode}:\n{output[-4000:]}"
    return outputs


def _history(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / files.HISTORY)


def _summary(run: Path) -> dict:
    return json.loads((run / files.TRAINING).read_text())


def _assert_same_training(run: Path, reference: Path) -> None:
    """The same curve, up to the order float sums are taken in."""
    ours, theirs = _history(run), _history(reference)
    assert len(ours) == len(theirs)
    np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=1e-3)
    np.testing.assert_allclose(ours["val_vqa_score"], theirs["val_vqa_score"], atol=0.01)


@pytest.fixture(scope="module")
def mirrored_runs(odd_validation, tmp_path_factory):
    """The same training mirrored over the two logical CPUs and on one device."""
    runs = tmp_path_factory.mktemp("mirrored")
    for strategy in ("mirrored", "none"):
        train(odd_validation.root, runs / strategy, GRID_CONFIG, verbose=0, strategy=strategy)
    return runs / "none", runs / "mirrored"


def test_mirrored_training_matches_one_device(mirrored_runs, odd_validation):
    single, mirrored = mirrored_runs
    assert (_summary(single)["strategy"], _summary(single)["replicas"]) == ("none", 1)
    assert (_summary(mirrored)["strategy"], _summary(mirrored)["replicas"]) == ("mirrored", 2)
    # Every validation question counts once, the padding rows not at all.
    assert _summary(mirrored)["n_val_questions"] == 15
    _assert_same_training(mirrored, single)
    accuracy = [evaluate_run(run, odd_validation, "test")["overall"] for run in mirrored_runs]
    assert abs(accuracy[0] - accuracy[1]) <= 1.0, accuracy
    for name in files.NEEDED_TO_ANSWER:
        assert (mirrored / name).is_file(), name


def test_mirrored_small_cnn_with_a_one_row_last_batch(one_row_last_batch, tmp_path):
    """Batch norm on a replica with no rows used to stop the first epoch: the row left
    over is trimmed. Through the command line, as a user runs it."""
    run, config = tmp_path / "run", tmp_path / "cnn.yaml"
    save_config(CNN_CONFIG.with_train(epochs=1), config)
    argv = ["train", str(one_row_last_batch.root), "--config", str(config), "--out", str(run)]
    assert main([*argv, "--strategy", "mirrored", "--no-bundle"]) == 0
    summary = _summary(run)
    assert summary["replicas"] == 2 and summary["n_fit_questions"] == 41
    assert np.isfinite(_history(run)["loss"]).all()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_worker_training_matches_mirrored(mirrored_runs, odd_validation, tmp_path):
    """Two worker processes on this machine, one replica each; only the chief (worker
    0) writes the run directory, the other trains into a temporary one it removes."""
    cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(2)]}
    run = tmp_path / "run"
    workers = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir()
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        workers.append(
            _train(
                odd_validation,
                run,
                GRID_CONFIG,
                "--strategy",
                "multi-worker",
                env={"TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(scratch)},
            )
        )
    outputs = _finish(*workers)
    assert "run saved in" in outputs[0] and "the chief saves the run" in outputs[1]
    summary = _summary(run)
    assert (summary["strategy"], summary["replicas"], summary["worker"]) == ("multi-worker", 2, 0)
    _assert_same_training(run, mirrored_runs[1])
    assert not any((tmp_path / "tmp1").iterdir())  # the worker's scratch run is gone


def test_a_worker_other_than_the_chief_leaves_no_files(tiny_dataset, tmp_path, monkeypatch):
    """Worker 1 trains into a temporary run directory, removed when it finishes."""
    worker = distribute.Replicas("multi-worker", count=1, worker=1, workers=2)
    monkeypatch.setattr(distribute, "start", lambda name, batch_size=None: worker)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    summary = train(
        tiny_dataset.root, tmp_path / "run", TINY_CONFIG, verbose=0, strategy="multi-worker"
    )
    assert summary["worker"] == 1 and summary["epochs_run"] == 2
    assert not (tmp_path / "run").exists() and not any((tmp_path / "scratch").iterdir())


def test_a_multi_worker_run_does_not_resume(tiny_dataset, tmp_path, monkeypatch):
    """The other workers kept no checkpoint to resume from: refused, rather than the
    chief resuming alone while they start again."""
    import keras

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):  # after the run's own checkpoint
            raise RuntimeError("simulated crash")

    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tiny_dataset.root, run, TINY_CONFIG, verbose=0, callbacks=[Crash()])
    chief = distribute.Replicas("multi-worker", count=1, worker=0, workers=2)
    monkeypatch.setattr(distribute, "start", lambda name, batch_size=None: chief)
    with pytest.raises(ConfigError, match="multi-worker runs do not resume"):
        train(tiny_dataset.root, run, TINY_CONFIG, verbose=0, strategy="multi-worker")


def _jax_python() -> str | None:
    """A Python with jax and keras: $VQA_JAX_PYTHON, or this one if it has jax."""
    return os.environ.get("VQA_JAX_PYTHON") or (
        sys.executable if importlib.util.find_spec("jax") else None
    )


@pytest.mark.skipif(
    _jax_python() is None,
    reason="jax is not installed (set VQA_JAX_PYTHON to a Python with jax "
    "and keras to run the JAX data-parallel test)",
)
def test_jax_data_parallel_matches_one_device(odd_validation, tmp_path):
    """keras.distribution.DataParallel over two CPU devices; batch norm is computed on
    the whole batch there, so the small CNN matches too."""
    env = {"KERAS_BACKEND": "jax", distribute.CPU_DEVICES_ENV: "2"}
    runs = {s: tmp_path / s for s in ("none", "data-parallel")}
    for strategy, run in runs.items():
        _finish(
            _train(
                odd_validation,
                run,
                CNN_CONFIG.with_train(epochs=3),
                "--strategy",
                strategy,
                env=env,
                python=_jax_python(),
            )
        )
    summary = _summary(runs["data-parallel"])
    assert (summary["keras_backend"], summary["replicas"]) == ("jax", 2)
    _assert_same_training(runs["data-parallel"], runs["none"])


# --- the pieces, in this process ---------------------------------------------------


def _batches(n: int, batch_size: int = 4, shuffle: bool = False) -> VQABatches:
    targets = np.eye(3, dtype="float32")[np.arange(n) % 3]
    return VQABatches(
        np.arange(n)[:, None] * np.ones((n, 2), "float32"),
        np.arange(n),
        np.arange(n)[:, None] * np.ones((n, 5), "int32"),
        sparse.csr_matrix(targets),
        batch_size=batch_size,
        shuffle=shuffle,
    )


def test_training_batches_are_trimmed_to_a_multiple_of_the_replicas():
    replicas = distribute.Replicas("mirrored", 2)
    trimmed = distribute.for_replicas(_batches(11), replicas, training=True)
    assert [len(trimmed[i][1]) for i in range(len(trimmed))] == [4, 4, 2]
    x, y = trimmed[2]
    assert x["image"][:, 0].tolist() == [8, 9] and x["question"].shape == (2, 5)
    # A last batch of one row would leave a replica with none: it is left out.
    assert len(distribute.for_replicas(_batches(9), replicas, training=True)) == 2


def test_validation_batches_are_padded_with_rows_of_weight_zero():
    padded = distribute.for_replicas(
        _batches(9), distribute.Replicas("mirrored", 2), training=False
    )
    assert len(padded) == 3
    x, y, weight = padded[2]
    assert x["image"][:, 0].tolist() == [8, 8] and len(y) == 2
    assert weight.tolist() == [1.0, 0.0]
    assert padded[0][2].tolist() == [1.0] * 4


def test_epoch_hooks_reach_the_batches_inside():
    inner = _batches(12, shuffle=True)
    wrapped = distribute.for_replicas(inner, distribute.Replicas("mirrored", 2), training=True)
    first = wrapped[0][0]["image"][:, 0].tolist()
    wrapped.on_epoch_end()
    assert inner.epoch == 1 and wrapped[0][0]["image"][:, 0].tolist() != first


@pytest.mark.parametrize("training", [True, False])
def test_grouped_batches_give_each_replica_its_questions_own_images(training):
    """A grouped batch shares its images; each replica's slice gets its own copies, and
    about_image counts within the slice."""
    index = np.repeat(np.arange(6), 3)  # 6 images, 3 questions each; batches of 7
    grouped = VQABatches(
        np.arange(6)[:, None] * np.ones((6, 2), "float32"),
        index,
        np.arange(18)[:, None].astype("int32"),
        sparse.csr_matrix(np.ones((18, 1), "float32")),
        batch_size=7,
        shuffle=True,
        group_by_image=True,
    )
    assert len(grouped[0][0]["image"]) < 7  # shared before the split
    wrapped = distribute.for_replicas(
        grouped, distribute.Replicas("mirrored", 2), training=training
    )
    for i in range(len(wrapped)):
        x = wrapped[i][0]
        per = len(x["question"]) // 2
        assert len(x["image"]) == len(x["question"]) == len(x["about_image"]) == 2 * per
        for r in range(2):
            rows = slice(r * per, (r + 1) * per)
            np.testing.assert_array_equal(x["about_image"][rows], np.arange(per))
            np.testing.assert_array_equal(
                x["image"][rows][x["about_image"][rows], 0], index[x["question"][rows, 0]]
            )


def test_one_replica_keeps_the_batches_as_they_are():
    batches = _batches(9)
    assert distribute.for_replicas(batches, distribute.Replicas(), training=True) is batches


def test_none_is_one_replica_and_the_chief():
    replicas = distribute.start("none", batch_size=7)
    assert (replicas.count, replicas.is_chief) == (1, True)
    with distribute.scope("none"):
        pass


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"Expected one of \['none', 'mirrored'"):
        distribute.start("horovod")


def test_a_strategy_of_another_backend_is_a_clear_error():
    with pytest.raises(ConfigError, match="data-parallel needs the jax backend"):
        distribute.start("data-parallel")


def test_the_global_batch_must_split_evenly():
    with pytest.raises(ConfigError, match="multiple of the 3 replicas.*batch_size=16"):
        distribute.Replicas("mirrored", 3).check_batch_size(16)
    distribute.Replicas("mirrored", 4).check_batch_size(16)


@pytest.mark.parametrize(
    "tf_config, match",
    [
        ("", "needs TF_CONFIG"),
        ("{not json", "TF_CONFIG is not valid"),
        ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG is not valid: KeyError"),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
            "not in the cluster",
        ),
        (
            '{"cluster": {"worker": ["a:1"], "ps": ["b:1"]}, '
            '"task": {"type": "worker", "index": 0}}',
            "at most one 'chief'",
        ),
    ],
)
def test_bad_tf_config_is_a_clear_error(tf_config, match):
    with pytest.raises(ConfigError, match=match):
        distribute.cluster_task(tf_config)


def test_tf_config_worker_index_counts_the_chief_first():
    cluster = {"chief": ["c:1"], "worker": ["a:1", "b:1"]}

    def task(kind: str, index: int) -> str:
        return json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})

    assert distribute.cluster_task(task("chief", 0)) == (0, 3)
    assert distribute.cluster_task(task("worker", 1)) == (2, 3)


def test_cpu_devices_cannot_change_once_tensorflow_runs(monkeypatch):
    import keras

    monkeypatch.delenv(distribute.CPU_DEVICES_ENV, raising=False)
    keras.ops.convert_to_numpy(keras.ops.ones(1))  # TensorFlow has started
    current = distribute.use_cpu_devices()
    with pytest.raises(ConfigError, match="already started.*VQA_CPU_DEVICES"):
        distribute.use_cpu_devices(current + 1)
    assert distribute.use_cpu_devices(current) == current
    monkeypatch.setenv(distribute.CPU_DEVICES_ENV, "two")
    with pytest.raises(ConfigError, match="positive integer.*'two'"):
        distribute.use_cpu_devices()


def test_command_line_offers_every_strategy():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    strategy = next(a for a in train._actions if a.dest == "strategy")
    assert tuple(strategy.choices) == distribute.STRATEGIES and strategy.default == "none"


def test_multi_worker_without_tf_config_fails_in_one_line(
    tiny_dataset, tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert (
        main(
            [
                "train",
                str(tiny_dataset.root),
                "--out",
                str(tmp_path / "run"),
                "--strategy",
                "multi-worker",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --strategy multi-worker needs TF_CONFIG") and "\n" not in err
