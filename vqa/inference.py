"""Answering without the model: what an answer is, how an image and a question become
the model's inputs, and how its outputs become answers. No Keras or TensorFlow here:
`vqa.answering.Answerer` (a run directory, Keras) and `vqa.runtime` (an exported
bundle, onnxruntime) differ only in how they run the model (`_run`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

from vqa.data.images import ImageLike, load_image, resize_and_crop, to_pil
from vqa.data.text import Encoded, Vocabulary, check_question, tokenize
from vqa.errors import VQAError
from vqa.runs.image_profile import FOREIGN, ImageProfile
from vqa.runs.model_card import summary, warnings_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerResult:
    """The model's answer to one question."""

    question: str
    answer: str
    probability: float
    top_k: list[tuple[str, float]]  # best first
    unknown_words: list[str] = field(default_factory=list)  # words the model never saw
    # Where the model looked: its attention weights over the image grid [rows, cols],
    # averaged over the hops (each hop's glimpse reaches the answer), summing to 1; None
    # for a model without attention.
    attention: np.ndarray | None = field(default=None, compare=False, repr=False)
    # Each hop's own weights [hops, rows, cols] (each hop's map sums to 1); None likewise.
    hop_attention: np.ndarray | None = field(default=None, compare=False, repr=False)
    # Why the answer may not mean much (vqa.runs.model_card.warnings_for): most words unknown,
    # or an answer of a type the question does not ask for.
    warnings: list[str] = field(default_factory=list)


def format_answer(result) -> str:
    """An AnswerResult as the command line shows it: the answer, then the top k."""
    lines = [f"Q: {result.question}", f"A: {result.answer} ({result.probability:.1%})"]
    lines += [f"   {i}. {answer:<12} {p:.1%}" for i, (answer, p) in enumerate(result.top_k, 1)]
    if result.unknown_words:
        lines.append(f"   words the model does not know: {', '.join(result.unknown_words)}")
    lines += [f"   note: {w}" for w in result.warnings]
    return "\n".join(lines)


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's pixels, [size, size, 3] uint8 RGB.

    "square": resized (bilinear) to size x size, the whole image (the small CNN);
    "crop": short side resized (bicubic) to `short_side`, centre-cropped to size (a
    pretrained backbone; its normalisation is inside the model).
    """

    kind: Literal["square", "crop"]
    size: int
    short_side: int = 0  # crop only

    @property
    def min_side(self) -> int:
        """The side images are resized to first (large files are decoded reduced to it)."""
        return self.size if self.kind == "square" else self.short_side

    def pixels(self, image: ImageLike) -> np.ndarray:
        if self.kind == "square":
            return load_image(image, self.size)
        return resize_and_crop(to_pil(image, min_side=self.short_side), self.short_side, self.size)

    def seen_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) of the part of a `size` image the grid covers: all
        of it when squeezed square, the centre crop otherwise."""
        width, height = size
        if self.kind == "square":
            return 0.0, 0.0, float(width), float(height)
        side = min(width, height) * self.size / self.short_side
        left, top = (width - side) / 2, (height - side) / 2
        return left, top, left + side, top + side

    def to_dict(self) -> dict:
        return asdict(self)


class AnswererBase:
    """Questions and images in, AnswerResults out, around a model run by `_run`.

    Subclasses set `words`, `answers`, `preprocessing`, `max_question_length`,
    `grid_shape` ((rows, cols) of an attention model's grid, else None), `card` and
    `image_profile`, and give `_run`. One instance may be shared by threads: model calls
    take turns.
    """

    words: Vocabulary
    answers: Vocabulary
    preprocessing: Preprocessing
    max_question_length: int
    grid_shape: tuple[int, int] | None = None
    card: dict | None = None  # the run's model card (vqa.runs.model_card), if it has one
    # What its training images look like (vqa.runs.image_profile); None: no such warnings
    image_profile: ImageProfile | None = None

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def summary(self) -> str | None:
        """One line on what the model was trained on and how well it did (model card)."""
        return summary(self.card)

    def answer(self, image: ImageLike, question: str, top_k: int = 3) -> AnswerResult:
        """Answer one question about one image.

        Args:
            image: a file path, the bytes of an image file, a PIL image, or an
                H x W x 3 uint8 array.
            question: free text; case and punctuation do not matter.
            top_k: how many ranked answers to return in `top_k`.
        """
        return self.answer_batch([image], [question], top_k=top_k)[0]

    def answer_batch(
        self,
        images: Sequence[ImageLike],
        questions: Sequence[str],
        top_k: int = 3,
        on_error: Literal["raise", "return"] = "raise",
        batch_size: int = 64,
    ) -> list[AnswerResult | VQAError]:
        """Answer one question about each image, `batch_size` at a time.

        Args:
            images, questions: as for `answer`, one question per image.
            on_error: "raise": the first bad image or question raises its VQAError;
                "return": its error stands in that row's place, the others are answered.
        """
        check_top_k(top_k)
        if on_error not in ("raise", "return"):
            raise ValueError(
                "Invalid value for argument on_error. Expected one of "
                f"{{'raise', 'return'}}. Received: on_error={on_error!r}"
            )
        images, questions = list(images), list(questions)
        if len(images) != len(questions):
            raise ValueError(
                "answer_batch needs one question per image. Received: "
                f"{len(images)} images, {len(questions)} questions"
            )
        results: list[AnswerResult | VQAError] = []
        for start in range(0, len(images), batch_size):
            results += self._answer_some(
                images[start : start + batch_size],
                questions[start : start + batch_size],
                top_k,
                on_error,
            )
        return results

    def explain(
        self, image: ImageLike, question: str, out: str | Path | BinaryIO, top_k: int = 3
    ) -> AnswerResult:
        """Answer, and write a PNG to `out`: the image with the attention heat map laid
        over the part the model saw (one picture per hop when there are two; `grad_cam`
        for a model without attention), and the top answers with their probabilities."""
        from vqa.visualize import draw_explanation  # matplotlib, only when drawing

        img = to_pil(image, min_side=self.preprocessing.min_side)  # decoded once, for both
        result = self.answer(img, question, top_k=top_k)
        cam = None if result.attention is not None else self.grad_cam(img, question, result.answer)
        draw_explanation(img, result, self.preprocessing.seen_box(img.size), out, grad_cam=cam)
        return result

    def grad_cam(self, image: ImageLike, question: str, answer: str) -> np.ndarray | None:
        """A [rows, cols] map of where `answer` came from, for a model without
        attention; None where the model cannot give one."""
        return None

    def _answer_some(
        self, images: list, questions: list, top_k: int, on_error: str
    ) -> list[AnswerResult | VQAError]:
        out: list[AnswerResult | VQAError | None] = [None] * len(images)
        rows, pixels, encoded = [], [], []
        for i, (image, question) in enumerate(zip(images, questions)):
            try:
                tokens = self._encode(question)  # the cheap check first
                pixels.append(self.preprocessing.pixels(image))
            except VQAError as exc:
                if on_error == "raise":
                    raise
                out[i] = exc
                continue
            rows.append(i)
            encoded.append(tokens)
        if rows:
            pixels = np.stack(pixels)
            probs, hops = self._predict(pixels, np.stack([e.ids for e in encoded]))
            foreign = (
                self.image_profile.is_foreign(pixels)
                if self.image_profile is not None
                else np.zeros(len(rows), bool)
            )
            means = None if hops is None else _frozen(hops.mean(axis=1))  # one map each
            for j, i in enumerate(rows):
                ranked = np.argsort(-probs[j])[:top_k]
                top = [(self.answers.tokens[a], float(probs[j, a])) for a in ranked]
                out[i] = AnswerResult(
                    questions[i],
                    top[0][0],
                    top[0][1],
                    top,
                    encoded[j].unknown_words,
                    None if hops is None else means[j],
                    None if hops is None else hops[j],
                    [FOREIGN] * bool(foreign[j])
                    + warnings_for(tokenize(questions[i]), encoded[j].unknown_words, top[0][0]),
                )
        return out

    def _encode(self, question: str) -> Encoded:
        check_question(question)
        length = self.max_question_length
        encoded = self.words.encode_question(question, length)
        if encoded.truncated:
            log.warning(
                "question has more than %d words; the rest is ignored: %r", length, question
            )
        return encoded

    def _predict(
        self, pixels: np.ndarray, tokens: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Answer probabilities [batch, answers], and each hop's attention [batch, hops,
        rows, cols] (each hop's map sums to 1) or None."""
        with self._lock:  # one model call at a time
            probs, weights = self._run(pixels.astype("float32"), tokens.astype("int32"))
        if weights is None:
            return np.asarray(probs), None
        hops = np.asarray(weights, dtype="float32")  # [batch, hops, cells]
        hops = (hops / hops.sum(axis=-1, keepdims=True)).reshape(*hops.shape[:2], *self.grid_shape)
        return np.asarray(probs), _frozen(hops)

    def _run(self, pixels: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The model on [batch, size, size, 3] float32 pixels (0-255) and [batch, L]
        int32 token ids: probabilities [batch, answers] and, for an attention model, its
        weights [batch, hops, cells] (else None)."""
        raise NotImplementedError


def check_top_k(top_k: int) -> None:
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer. Received: top_k={top_k!r}")


def _frozen(maps: np.ndarray) -> np.ndarray:
    """Results are frozen; each one's maps are a view of this array, so it is read-only."""
    maps.setflags(write=False)
    return maps
