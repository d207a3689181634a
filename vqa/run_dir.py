"""What a run directory holds, in one place, and how it is written safely."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from vqa.errors import RunDirError

MODEL = "model.keras"  # best epoch, for answering; appears when training finishes
CONFIG = "config.yaml"
QUESTION_VOCAB = "question_vocab.json"
ANSWER_VOCAB = "answer_vocab.json"
HISTORY = "history.csv"
TRAINING = "training.json"  # summary of the finished fit
VALIDATION_IMAGES = "validation_images.json"
METRICS = "metrics.json"
PREDICTIONS = "predictions.json"
IMAGE_ENCODER = "image_encoder.keras"  # pretrained runs: the backbone, pixels -> grid
FEATURES = "features.json"  # pretrained runs: the manifest of the features trained on
CHECKPOINT_DIR = "checkpoint"  # resumable state while training; removed when done
STATE = "state.json"  # in CHECKPOINT_DIR; the commit point of each epoch
STARTED = "vqa-run"  # in CHECKPOINT_DIR from the start: marks the directory as ours
TMP = ".tmp"  # suffix of files being written (before the rename that commits them)

NEEDED_TO_ANSWER = (MODEL, CONFIG, QUESTION_VOCAB, ANSWER_VOCAB)
ALL_FILES = (MODEL, CONFIG, QUESTION_VOCAB, ANSWER_VOCAB, HISTORY, TRAINING, VALIDATION_IMAGES,
             METRICS, PREDICTIONS, IMAGE_ENCODER, FEATURES)


def check_run_dir(path: str | Path) -> Path:
    """Return `path` if it holds a trained run, else raise RunDirError naming what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"Not a run directory: {path} does not exist. "
                          "Train one with `vqa train`.")
    missing = [name for name in NEEDED_TO_ANSWER if not (path / name).is_file()]
    if missing:
        raise RunDirError(f"Not a trained run directory: {path} lacks {', '.join(missing)}. "
                          "Train one with `vqa train`.")
    return path


def is_unfinished_run(path: str | Path) -> bool:
    """A run this package started whose training has not finished."""
    return (Path(path) / CHECKPOINT_DIR / STARTED).is_file()


def temp_path(path: Path) -> Path:
    """Where to write `path` before renaming it into place; Keras wants .keras last."""
    if path.suffix == ".keras":
        return path.with_name(path.stem + TMP + ".keras")
    return path.with_name(path.name + TMP)


def write_json_atomic(data: object, path: str | Path) -> None:
    path = Path(path)
    tmp = temp_path(path)
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def clear_run_dir(path: str | Path) -> None:
    """Delete what a run wrote in `path`, and refuse if anything else is there.

    Only our own files are removed, so `--overwrite` pointed at the wrong directory
    deletes nothing of the user's.
    """
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise RunDirError(f"Run directory {path} is a file. Choose another --out.")
    ours = {*ALL_FILES, *(temp_path(Path(f)).name for f in ALL_FILES)}
    if is_unfinished_run(path):
        ours.add(CHECKPOINT_DIR)
    others = sorted(p.name for p in path.iterdir() if p.name not in ours)
    if others:
        raise RunDirError(f"Refusing to overwrite {path}: it holds files that are not a vqa "
                          f"run's ({', '.join(others[:5])}). Choose another --out.")
    for entry in path.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
