"""What a run directory holds, in one place."""

from __future__ import annotations

import shutil
from pathlib import Path

from vqa.errors import RunDirError

MODEL = "model.keras"  # best epoch, saved for answering
CONFIG = "config.yaml"
QUESTION_VOCAB = "question_vocab.json"
ANSWER_VOCAB = "answer_vocab.json"
HISTORY = "history.csv"
TRAINING = "training.json"  # summary of the finished fit
VALIDATION_IMAGES = "validation_images.json"
METRICS = "metrics.json"
PREDICTIONS = "predictions.json"
CHECKPOINT_DIR = "checkpoint"  # resumable state while training; removed when done

NEEDED_TO_ANSWER = (MODEL, CONFIG, QUESTION_VOCAB, ANSWER_VOCAB)
ALL_FILES = (MODEL, CONFIG, QUESTION_VOCAB, ANSWER_VOCAB, HISTORY, TRAINING, VALIDATION_IMAGES,
             METRICS, PREDICTIONS)


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


def clear_run_dir(path: str | Path) -> None:
    """Delete what a run wrote in `path`, and refuse if anything else is there.

    Only our own files are removed, so `--overwrite` pointed at the wrong directory
    deletes nothing of the user's.
    """
    path = Path(path)
    if not path.is_dir():
        return
    ours = set(ALL_FILES) | {CHECKPOINT_DIR}
    entries = list(path.iterdir())
    # Temporary files of an interrupted atomic write are ours too (model.tmp.keras, ...).
    others = sorted(p.name for p in entries if p.name not in ours and ".tmp" not in p.name)
    if others:
        raise RunDirError(f"Refusing to overwrite {path}: it holds files that are not a vqa "
                          f"run's ({', '.join(others[:5])}). Choose another --out.")
    for entry in entries:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
