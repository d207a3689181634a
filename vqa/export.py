"""`vqa export`: a run as one graph the rest of the world reads, with what answering
needs next to it (a bundle, which `vqa.runtime` answers from without TensorFlow).

    BUNDLE/
      model.onnx          pixels [batch, S, S, 3] float32 (0-255 RGB, made by the
                          preprocessing below) and question [batch, L] int32 token ids ->
                          answers [batch, answers] probabilities and, for an attention
                          model, attention [batch, hops, cells]; batch and L dynamic;
                          the backbone and its normalisation included.
                          (saved_model/ or model.tflite for the other formats)
      bundle.json         format, inputs, outputs, preprocessing (resize, crop), the
                          question length, the attention grid, the run's config, and the
                          largest gap between the graph and the Keras model on a check batch
      question_vocab.json, answer_vocab.json, model_card.json (as in the run)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from vqa import __version__
from vqa.answering import Answerer
from vqa.errors import VQAError
from vqa.runs import files
from vqa.runtime import BUNDLE

# format -> (file or folder in the bundle, Keras's name of the format, what it needs)
FORMATS = {
    "onnx": ("model.onnx", "onnx", "tf2onnx and onnxruntime"),
    "saved_model": ("saved_model", "tf_saved_model", "tensorflow"),
    "litert": ("model.tflite", "litert", "tensorflow"),
}
_CHECK_BATCH = 4
log = logging.getLogger(__name__)


class ExportError(VQAError):
    """A run that cannot be exported, or a bundle that cannot be written."""


def write_run_bundle(run_dir: str | Path) -> Path | None:
    """Export a run into its own RUN/bundle (ONNX), so that `vqa ask RUN` answers from it
    without TensorFlow (about a second, not ten). `vqa train` and `vqa demo` call this
    when training ends, `vqa ask` when the bundle is missing or older than model.keras.
    A run that cannot be written to, or exported, only loses the speed: None. A
    captioning run has no bundle (its decoding loop is Keras'): None."""
    run = Path(run_dir)
    if files.is_caption_run(run):
        return None
    start = time.perf_counter()
    try:
        export_run(run, run / files.FAST_BUNDLE, overwrite=True)
    except (ExportError, OSError) as exc:
        log.info("no bundle for %s: `vqa ask` will load it with Keras (%s)", run, exc)
        return None
    log.info("wrote %s in %.0f s", run / files.FAST_BUNDLE, time.perf_counter() - start)
    return run / files.FAST_BUNDLE


def export_run(
    run_dir: str | Path, out: str | Path, format: str = "onnx", overwrite: bool = False
) -> dict:
    """Write `run_dir`'s model as a bundle in `out`; returns what bundle.json holds.

    The bundle appears whole or not at all (written beside `out`, then renamed)."""
    if format not in FORMATS:
        raise ExportError(f"Unknown export format {format!r}. Expected one of {list(FORMATS)}.")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists; pass --overwrite to replace it.")
    answerer = Answerer.load(run_dir)
    run = Path(run_dir)
    model = answerer.inference_model()
    pixels, tokens = _check_batch(answerer)
    expected = model({"pixels": pixels, "question": tokens})  # Keras exports called models
    name, keras_format, needs = FORMATS[format]
    scratch = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        try:
            with _quiet_converters():
                model.export(str(scratch / name), format=keras_format, verbose=False)
        except ImportError as exc:
            raise ExportError(
                f"Exporting to {format} needs {needs} ({exc.name or exc} is "
                "missing; vqa installs it unless installed with --no-deps): "
                "pip install tf2onnx onnx onnxruntime."
            ) from None
        except Exception as exc:  # converters raise many types
            raise ExportError(f"Cannot export {run} to {format}: {_first_line(exc)}") from None
        for kept in (
            files.QUESTION_VOCAB,
            files.ANSWER_VOCAB,
            files.MODEL_CARD,
            files.IMAGE_PROFILE,
        ):
            if (run / kept).exists():
                shutil.copy2(run / kept, scratch / kept)
        outputs = ["answers"] + (["attention"] if "attention" in expected else [])
        info = {
            "vqa_version": __version__,
            "format": format,
            "model": name,
            "source": str(run),
            "source_model_sha256": files.model_digest(run),
            "inputs": {
                "pixels": {
                    "shape": [None, *pixels.shape[1:]],
                    "dtype": "float32",
                    "values": "RGB 0-255, made by preprocessing; normalisation is in the graph",
                },
                "question": {
                    "shape": [None, None],
                    "dtype": "int32",
                    "values": "question_vocab.json ids, 0-padded at the end, "
                    "at most max_question_length",
                },
            },
            "outputs": outputs,
            "preprocessing": answerer.preprocessing.to_dict(),
            "max_question_length": answerer.max_question_length,
            "grid_shape": None if answerer.grid_shape is None else list(answerer.grid_shape),
            "config": answerer.config.to_dict(),
        }
        if format == "onnx":  # the graph as written, against the Keras model
            info["check"] = _check_onnx(scratch / name, pixels, tokens, expected)
        (scratch / BUNDLE).write_text(json.dumps(info, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        scratch.rename(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return info


def _check_batch(answerer: Answerer) -> tuple[np.ndarray, np.ndarray]:
    """A few random images and questions of the model's vocabulary."""
    rng = np.random.default_rng(0)
    size = answerer.preprocessing.size
    pixels = rng.integers(0, 256, (_CHECK_BATCH, size, size, 3)).astype("float32")
    tokens = rng.integers(
        2, len(answerer.words.tokens), (_CHECK_BATCH, answerer.max_question_length)
    ).astype("int32")
    tokens[:, -3:] = 0  # padding, as real questions have
    return pixels, tokens


def _check_onnx(path: Path, pixels: np.ndarray, tokens: np.ndarray, expected: dict) -> dict:
    try:
        import onnxruntime
    except ImportError:
        raise ExportError(
            "Checking the ONNX graph needs onnxruntime: pip install onnxruntime."
        ) from None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        got = dict(zip(names, session.run(None, {"pixels": pixels, "question": tokens})))
    except Exception as exc:  # onnxruntime raises its own types for graphs it cannot run
        raise ExportError(
            f"onnxruntime cannot run the ONNX graph of {path.parent.name}: {_first_line(exc)}"
        ) from None
    gap = {k: float(np.max(np.abs(got[k] - np.asarray(v)))) for k, v in expected.items()}
    if max(gap.values()) > 1e-3:
        raise ExportError(
            f"The ONNX graph of {path.parent.name} differs from the Keras "
            f"model by up to {max(gap.values()):.2g} on a check batch."
        )
    return {"batch": int(len(pixels)), "max_abs_difference": gap}


@contextlib.contextmanager
def _quiet_converters():
    """tf2onnx logs each pass and warns of numpy's future; none of it is for users."""
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__).rstrip(".")
