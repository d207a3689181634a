"""What a run directory holds, in one place, and how it is written safely."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from vqa.errors import RunDirError
from vqa.runs.atomic import original_name
from vqa.runs.locks import check_free

MODEL = "model.keras"  # best epoch, for answering; appears when training finishes
CONFIG = "config.yaml"
QUESTION_VOCAB = "question_vocab.json"
ANSWER_VOCAB = "answer_vocab.json"
CAPTION_VOCAB = "caption_vocab.json"  # captioning runs, in place of the two above
HISTORY = "history.csv"
TRAINING = "training.json"  # summary of the finished fit
VALIDATION_IMAGES = "validation_images.json"
METRICS = "metrics.json"
PREDICTIONS = "predictions.json"
EVALUATIONS = "evaluations"  # other datasets' and splits' metrics and predictions
IMAGE_ENCODER = "image_encoder.keras"  # pretrained runs: the backbone, pixels -> grid
FEATURES = "features.json"  # pretrained runs: the manifest of the features trained on
IMAGE_PROFILE = "image_profile.npz"  # the training images' profile: foreign-image warnings
TENSORBOARD = "tensorboard"  # TensorBoard event files (train/, validation/)
MODEL_CARD = "model_card.json"  # what the run knows (vqa.runs.model_card)
CURVES = "curves.png"  # validation accuracy per epoch
GRADIENT_FLOW = "gradient_flow.csv"  # train.log_gradient_flow: the gradient at each word
GRADIENT_FLOW_PLOT = "gradient_flow.png"  # and its plot by word position
FAST_BUNDLE = "bundle"  # the run's own ONNX bundle: `vqa ask RUN` answers with it when current
CHECKPOINT_DIR = "checkpoint"  # resumable state while training; removed when done
STATE = "state.json"  # in CHECKPOINT_DIR; the commit point of each epoch
STARTED = "vqa-run"  # in CHECKPOINT_DIR from the start: marks the directory as ours

NEEDED_TO_ANSWER = (MODEL, CONFIG, QUESTION_VOCAB, ANSWER_VOCAB)
NEEDED_TO_CAPTION = (MODEL, CONFIG, CAPTION_VOCAB)
ALL_FILES = (
    MODEL,
    CONFIG,
    QUESTION_VOCAB,
    ANSWER_VOCAB,
    CAPTION_VOCAB,
    HISTORY,
    TRAINING,
    VALIDATION_IMAGES,
    METRICS,
    PREDICTIONS,
    EVALUATIONS,
    IMAGE_ENCODER,
    FEATURES,
    IMAGE_PROFILE,
    TENSORBOARD,
    MODEL_CARD,
    CURVES,
    GRADIENT_FLOW,
    GRADIENT_FLOW_PLOT,
    FAST_BUNDLE,
)


def model_digest(run: str | Path) -> str:
    """SHA-256 of the run's model.keras: what a bundle made from it records, so that a
    bundle of an older model is never taken for the current one."""
    digest = hashlib.sha256()
    with open(Path(run) / MODEL, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def current_bundle(run: str | Path) -> Path | None:
    """RUN/bundle if it was exported from the run's current model.keras, else None."""
    bundle = Path(run) / FAST_BUNDLE
    try:
        made_from = json.loads((bundle / "bundle.json").read_text()).get("source_model_sha256")
        return bundle if made_from == model_digest(run) else None
    except (OSError, ValueError, AttributeError):
        return None


def is_caption_run(path: str | Path) -> bool:
    """Whether `path` holds a captioning run (a caption vocabulary, not question and
    answer ones)."""
    return (Path(path) / CAPTION_VOCAB).is_file()


def check_run_dir(path: str | Path, needed: tuple[str, ...] = NEEDED_TO_ANSWER) -> Path:
    """Return `path` if it holds a trained run, else raise RunDirError naming what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(
            f"Not a run directory: {path} does not exist. Train one with `vqa train`."
        )
    missing = [name for name in needed if not (path / name).is_file()]
    if missing and needed == NEEDED_TO_ANSWER and is_caption_run(path):
        raise RunDirError(
            f"{path} is a captioning run: it describes images (`vqa caption`, "
            "vqa.Captioner) and does not answer questions."
        )
    if missing and needed == NEEDED_TO_CAPTION and (path / QUESTION_VOCAB).is_file():
        raise RunDirError(
            f"{path} is a VQA run: it answers questions (`vqa ask`, "
            "vqa.Answerer); a captioning run is trained with a caption: config."
        )
    if missing:
        raise RunDirError(
            f"Not a trained run directory: {path} lacks {', '.join(missing)}. "
            "Train one with `vqa train`."
        )
    return path


def is_unfinished_run(path: str | Path) -> bool:
    """A run this package started whose training has not finished."""
    return (Path(path) / CHECKPOINT_DIR / STARTED).is_file()


def check_new_run(path: str | Path, overwrite: bool) -> None:
    """Fail at once, before TensorFlow loads, if training cannot write `path`: a
    non-empty directory that holds no run of ours to resume, or (with `overwrite`) that
    holds files that are not a run's."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise RunDirError(f"Run directory {path} is a file. Choose another --out.")
    check_free(path, "training")
    if overwrite:
        others = _not_ours(path)
        if others:
            raise RunDirError(
                f"Refusing to overwrite {path}: it holds files that are not a "
                f"vqa run's ({', '.join(others[:5])}). Choose another --out."
            )
    elif any(path.iterdir()) and not is_unfinished_run(path):
        raise RunDirError(
            f"Run directory {path} already exists and is not empty. "
            "Choose another --out or pass --overwrite."
        )


def _not_ours(path: Path) -> list[str]:
    ours = set(ALL_FILES)
    if is_unfinished_run(path):
        ours.add(CHECKPOINT_DIR)
    # Ours too: what a crash left half-written under a temporary name.
    return sorted(p.name for p in path.iterdir() if original_name(p.name) not in ours)


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
    others = _not_ours(path)
    if others:
        raise RunDirError(
            f"Refusing to overwrite {path}: it holds files that are not a vqa "
            f"run's ({', '.join(others[:5])}). Choose another --out."
        )
    for entry in path.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
