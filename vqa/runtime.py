"""Answer from an exported ONNX bundle (`vqa export`) with onnxruntime, numpy and Pillow
only: importing this module never imports TensorFlow or Keras.

    from vqa import runtime
    model = runtime.load("bundles/easy-vqa")
    result = model.answer("photo.png", "what color is the shape?", top_k=3)
    result.answer, result.probability, result.top_k, result.attention
    model.answer_batch(["a.png", "b.jpg"], ["what shape?", "what color?"])

`pip install 'vqa[runtime]'` installs just what this needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vqa.data.text import Vocabulary
from vqa.errors import RunDirError
from vqa.inference import AnswererBase, AnswerResult, Preprocessing, format_answer
from vqa.runs import files
from vqa.runs.image_profile import ImageProfile
from vqa.runs.model_card import read_card

__all__ = ["Bundle", "AnswerResult", "format_answer", "is_bundle", "load"]

BUNDLE = "bundle.json"  # what vqa.export writes beside the graph


def is_bundle(path: str | Path) -> bool:
    """Whether `path` is a bundle directory (it holds bundle.json)."""
    return (Path(path) / BUNDLE).is_file()


def load(bundle: str | Path, threads: int = 0) -> Bundle:
    """The exported model in `bundle`, ready to answer (as `Answerer` does).

    `threads`: onnxruntime's threads for one model call (0: its default, every core)."""
    return Bundle.load(bundle, threads)


class Bundle(AnswererBase):
    """An exported model with its vocabularies and preprocessing: `answer`,
    `answer_batch` and `summary` as `vqa.Answerer` has them."""

    def __init__(
        self, session, info: dict, words: Vocabulary, answers: Vocabulary, card: dict | None = None
    ):
        super().__init__()
        self.session, self.info = session, info
        self.words, self.answers, self.card = words, answers, card
        self.preprocessing = Preprocessing(**info["preprocessing"])
        self.max_question_length = int(info["max_question_length"])
        self.grid_shape = None if info["grid_shape"] is None else tuple(info["grid_shape"])
        self._outputs = [o.name for o in session.get_outputs()]

    @classmethod
    def load(cls, bundle: str | Path, threads: int = 0) -> Bundle:
        root = Path(bundle)
        if not is_bundle(root):
            raise RunDirError(
                f"Not an exported bundle (no {BUNDLE}): {root}. Make one with "
                "`vqa export RUN_DIR --out BUNDLE`."
            )
        try:
            info = json.loads((root / BUNDLE).read_text())
            words, answers = (
                Vocabulary.load(root / name) for name in (files.QUESTION_VOCAB, files.ANSWER_VOCAB)
            )
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise RunDirError(f"Cannot read the bundle {root}: {exc}") from None
        if info.get("format") != "onnx":
            raise RunDirError(
                f"{root} holds a {info.get('format')} export; vqa.runtime "
                "answers from ONNX bundles (`vqa export --format onnx`)."
            )
        try:
            import onnxruntime
        except ImportError:
            raise RunDirError(
                "Answering from a bundle needs onnxruntime: pip install 'vqa[runtime]'."
            ) from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # its warnings are not for our users
        try:
            session = onnxruntime.InferenceSession(
                str(root / info["model"]), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types
            raise RunDirError(f"Cannot load {root / info['model']}: {exc}") from None
        bundle = cls(session, info, words, answers, read_card(root))
        bundle.image_profile = ImageProfile.load(root / files.IMAGE_PROFILE)  # numpy only
        return bundle

    def _run(self, pixels: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        got = dict(
            zip(self._outputs, self.session.run(None, {"pixels": pixels, "question": tokens}))
        )
        return got["answers"], got.get("attention")


def main(argv: list[str] | None = None) -> int:
    """`python -m vqa.runtime BUNDLE IMAGE "QUESTION" [--top-k 3]`: `vqa ask` for an
    environment that holds only the runtime."""
    import argparse
    import sys

    from vqa.errors import VQAError

    parser = argparse.ArgumentParser(
        prog="python -m vqa.runtime",
        description="answer a question about an image with an exported bundle",
    )
    parser.add_argument("bundle")
    parser.add_argument("image")
    parser.add_argument("question")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        model = load(args.bundle)
        print(format_answer(model.answer(args.image, args.question, top_k=args.top_k)))
    except (VQAError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if model.summary:
        print(f"model: {model.summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
