"""Checkpoint and resume: per epoch the best and the last model, history.csv, and the
state that says which count (written last, atomically), so that a run killed at any
point resumes at the first epoch it does not record, as an uninterrupted run would."""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from vqa.config import Config, load_config
from vqa.errors import ConfigError, RunDirError, TrainingError
from vqa.runs import atomic, files
from vqa.runs.atomic import atomic_write

log = logging.getLogger(__name__)
MONITOR = "val_vqa_score"


class RunCheckpoint(keras.callbacks.Callback):
    """Per epoch: logs history.csv, keeps the best and the last model, stops on a plateau.

    Models are saved under new names (best-epochN.keras, last-epochN.keras) and
    checkpoint/state.json, written last and atomically, says which ones count; so a
    crash at any point leaves a consistent run that resumes at the first epoch the
    state does not record.
    """

    def __init__(self, run: Path, patience: int, state: dict, monitor: str = MONITOR):
        super().__init__()
        self.run, self.monitor = run, monitor  # monitor: higher is better
        self.checkpoints = run / files.CHECKPOINT_DIR
        self.patience = patience
        self.state = state
        self.epoch_start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            # Raised, not stop_training: that would still end the epoch and commit it.
            self._stop(
                f"The training loss became {float(loss)} at epoch {self.epoch + 1}, "
                f"step {batch + 1}"
            )

    def _stop(self, what: str) -> None:
        last = self.state["next_epoch"]
        kept = (
            f"it keeps its last good checkpoint (epoch {last}); `vqa train` with the "
            "same --out resumes from there"
            if last
            else "no epoch had finished"
        )
        raise TrainingError(
            f"{what}; training stopped and {kept}. Lower "
            "train.learning_rate or set train.clip_norm, and check the "
            "inputs for NaN or infinite values."
        )

    def on_epoch_end(self, epoch, logs=None):
        seconds = round(time.perf_counter() - self.epoch_start, 2)
        if logs is not None:  # the callbacks after this one (TensorBoard) log it too
            logs["seconds"] = seconds
        logs = {**(logs or {}), "seconds": seconds}
        if self.monitor not in logs:
            raise RuntimeError(f"Training logs lack {self.monitor}; got {sorted(logs)}")
        # The loss clips probabilities, so NaN weights can hide behind a finite loss.
        bad = [
            v.path
            for v in self.model.weights
            if not np.isfinite(keras.ops.convert_to_numpy(v)).all()
        ]
        if bad:
            self._stop(
                f"The weights became NaN or infinite during epoch {epoch + 1} "
                f"({bad[0]}{' and others' if len(bad) > 1 else ''})"
            )
        append_history(self.run / files.HISTORY, epoch, logs)
        s = self.state
        last = f"last-epoch{epoch}.keras"
        save_atomic(self.model, self.checkpoints / last)
        if logs[self.monitor] > s["best"]:
            best = f"best-epoch{epoch}.keras"
            with atomic_write(self.checkpoints / best) as tmp:
                shutil.copyfile(self.checkpoints / last, tmp)
            s.update(best=float(logs[self.monitor]), best_epoch=epoch, best_file=best, wait=0)
        else:
            s["wait"] += 1
            if s["wait"] >= self.patience:
                s["stopped_early"] = True
                self.model.stop_training = True
        s.update(next_epoch=epoch + 1, last_file=last, seed_states=seed_states(self.model))
        atomic.write_json(s, self.checkpoints / files.STATE)  # the commit point
        for stale in self.checkpoints.glob("*.keras"):
            if stale.name not in (s["best_file"], s["last_file"]):
                stale.unlink()


def _seed_generators(model: keras.Model) -> list:
    """The random streams of the model's layers (dropout's), in a fixed order."""
    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        found += [
            value
            for _, value in sorted(vars(layer).items())
            if isinstance(value, keras.random.SeedGenerator)
        ]
    return found


def seed_states(model: keras.Model) -> list[list[int]]:
    """Where each random stream of `model` is. A saved model does not keep this (a
    loaded one draws new seeds), so a resumed run restores it to drop out the same
    units an uninterrupted run would."""
    return [np.asarray(g.state).tolist() for g in _seed_generators(model)]


def set_seed_states(model: keras.Model, states: list[list[int]] | None) -> None:
    generators = _seed_generators(model)
    if states is None or len(states) != len(generators):
        log.warning(
            "the checkpoint does not record the model's random streams; the resumed "
            "run will drop out other units than an uninterrupted one"
        )
        return
    for generator, state in zip(generators, states):
        generator.state.assign(np.asarray(state, dtype=generator.state.dtype))


def prepare_run_dir(run: Path, config: Config, overwrite: bool) -> dict | None:
    """Create `run`, or find the state to resume from. Returns that state or None."""
    state_file = run / files.CHECKPOINT_DIR / files.STATE
    if overwrite or (files.is_unfinished_run(run) and not state_file.is_file()):
        files.clear_run_dir(run)  # asked to, or our run that crashed in its first epoch
    if state_file.is_file():
        saved = load_config(run / files.CONFIG)
        # How steps execute is not what is trained: a run may resume eagerly to debug.
        if saved.with_train(run_eagerly=False) != config.with_train(run_eagerly=False):
            raise ConfigError(
                f"{run} holds an unfinished run with a different config "
                f"({run / files.CONFIG}). Resume it with that config, or "
                "pass --overwrite to start again."
            )
        return json.loads(state_file.read_text())
    if run.exists() and (not run.is_dir() or any(run.iterdir())):
        raise RunDirError(
            f"Run directory {run} already exists and is not empty. "
            "Choose another --out or pass --overwrite."
        )
    (run / files.CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    (run / files.CHECKPOINT_DIR / files.STARTED).touch()
    return None


def append_history(path: Path, epoch: int, logs: dict) -> None:
    """Add the row of `epoch` (Keras' 0-based index; history.csv numbers epochs from 1,
    as the logs and summaries do), replacing rows of this or later epochs left by a
    crash."""
    number = epoch + 1
    row = pd.DataFrame([{"epoch": number, **{k: float(v) for k, v in sorted(logs.items())}}])
    if path.is_file():
        old = epochs_from_one(pd.read_csv(path))
        row = pd.concat([old[old["epoch"] < number], row], ignore_index=True)
    with atomic_write(path) as tmp:
        row.to_csv(tmp, index=False)


def epochs_from_one(history: pd.DataFrame) -> pd.DataFrame:
    """A history.csv table with its epochs numbered from 1 (vqa 0.1.0 numbered from 0)."""
    if len(history) and (history["epoch"] == 0).any():
        history = history.assign(epoch=history["epoch"] + 1)
    return history


def fresh_state(fingerprint: dict, **extra) -> dict:
    """The resume state of a run before its first epoch (`fingerprint`: the data it
    trains on, checked when it resumes)."""
    return {
        "next_epoch": 0,
        "best": -math.inf,
        "best_epoch": -1,
        "best_file": None,
        "last_file": None,
        "wait": 0,
        "stopped_early": False,
        "data": fingerprint,
        **extra,
    }


def save_atomic(model: keras.Model, path: Path) -> None:
    with atomic_write(path) as tmp:
        model.save(tmp)


def tensorboard(run: Path) -> list[keras.callbacks.Callback]:
    """TensorBoard event files in RUN_DIR/tensorboard (loss, VQA accuracy, learning rate
    and seconds per epoch, for training and validation), when TensorFlow's summary
    writer is installed; none, said once, on a backend without it."""
    try:
        import tensorboard  # noqa: F401
        import tensorflow  # noqa: F401  (the writer Keras' callback uses on every backend)
    except ImportError:
        log.info("no TensorBoard logs: they need the tensorflow and tensorboard packages")
        return []
    return [
        keras.callbacks.TensorBoard(run / files.TENSORBOARD, write_graph=False, profile_batch=0)
    ]


def library_versions() -> dict[str, str]:
    """The versions a run's numbers depend on, recorded in its training.json."""
    from importlib import metadata

    versions = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "keras": keras.__version__,
    }
    backend = {
        "tensorflow": ("tensorflow", "tensorflow-cpu"),
        "jax": ("jax", "jaxlib"),
        "torch": ("torch",),
    }.get(keras.backend.backend(), ())
    for name in (*backend, "vqa"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # not installed (vqa: run from a source tree)
            continue
    return versions
