"""Answer questions about images with a trained run directory.

    from vqa import Answerer
    answerer = Answerer.load("runs/easy-vqa")
    result = answerer.answer("photo.png", "what color is the shape?", top_k=3)
    result.answer, result.probability, result.top_k, result.attention
    answerer.answer_batch(["a.png", "b.jpg"], ["what shape?", "what color?"])
    answerer.explain("photo.png", "what color is the shape?", out="why.png")
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, Literal, Sequence

import keras
import numpy as np
import pandas as pd

import vqa.models  # noqa: F401  (registers the custom layers before loading)
from vqa import run_dir as files
from vqa.config import Config, load_config
from vqa.data.batches import VQABatches
from vqa.data.dataset import PreparedDataset
from vqa.data.images import ImageLike, load_image, to_pil
from vqa.data.text import Encoded, Vocabulary, check_question, tokenize
from vqa.errors import RunDirError, VQAError
from vqa.features.backbones import get_backbone
from vqa.features.cache import FeatureCache, FeatureCacheError, Manifest, image_table
from vqa.gradcam import grad_cam
from vqa.model_card import read_card, summary, warnings_for
from vqa.models.builder import attention_model, model_inputs, takes_about_image
from vqa.visualize import draw_explanation

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
    # Why the answer may not mean much (vqa.model_card.warnings_for): most words unknown,
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


class Answerer:
    """A trained model with its vocabularies and preprocessing.

    One Answerer may be shared by threads: model calls take turns (a lock), image
    decoding does not.
    """

    def __init__(self, model: keras.Model, config: Config, words: Vocabulary,
                 answers: Vocabulary, image_encoder: keras.Model | None = None,
                 features: Manifest | None = None):
        self.model, self.config, self.words, self.answers = model, config, words, answers
        # Pretrained runs: the backbone (pixels -> grid) and the features it was trained on.
        self.image_encoder, self.features = image_encoder, features
        # The same weights, also giving the attention weights; None without attention.
        self._explained = attention_model(model)
        self._grid_shape = (tuple(model.get_layer("cells").input.shape[1:3])
                            if self._explained is not None else None)
        self._lock = threading.Lock()
        self.card: dict | None = None  # the run's model card (vqa.model_card), once loaded

    @classmethod
    def load(cls, run_dir: str | Path) -> "Answerer":
        run = files.check_run_dir(run_dir)
        try:
            model = keras.models.load_model(run / files.MODEL, compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises many types for a bad archive
            raise RunDirError(f"Cannot load {run / files.MODEL}: {exc}") from None
        _check_runs(model, run)
        vocabularies = []
        for name in (files.QUESTION_VOCAB, files.ANSWER_VOCAB):
            try:
                vocabularies.append(Vocabulary.load(run / name))
            except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
                raise RunDirError(f"Cannot read {run / name}: {exc}") from None
        config = load_config(run / files.CONFIG)
        if config.model.image_encoder == "pretrained" and not config.model.backbone_image_size:
            # Runs record the size they used; older ones ran at the backbone's own.
            size = get_backbone(config.model.backbone).image_size
            config = Config(replace(config.model, backbone_image_size=size),
                            config.train)
        if config.pixels_in:  # the model itself turns pixels into answers
            return cls(model, config, *vocabularies)._with_card(run)
        try:
            encoder = keras.models.load_model(run / files.IMAGE_ENCODER, compile=False,
                                              safe_mode=True)
            features = Manifest.read(run / files.FEATURES)
        except Exception as exc:  # missing or damaged files raise several types
            raise RunDirError(f"Cannot load the image encoder of {run}: {exc}") from None
        return cls(model, config, *vocabularies, image_encoder=encoder,
                   features=features)._with_card(run)

    def _with_card(self, run: Path) -> "Answerer":
        self.card = read_card(run)  # None for a run made before model cards
        return self

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

    def answer_batch(self, images: Sequence[ImageLike], questions: Sequence[str],
                     top_k: int = 3, on_error: Literal["raise", "return"] = "raise",
                     batch_size: int = 64) -> list[AnswerResult | VQAError]:
        """Answer one question about each image, `batch_size` at a time.

        Args:
            images, questions: as for `answer`, one question per image.
            on_error: "raise": the first bad image or question raises its VQAError;
                "return": its error stands in that row's place, the others are answered.
        """
        _check_top_k(top_k)
        if on_error not in ("raise", "return"):
            raise ValueError("Invalid value for argument on_error. Expected one of "
                             f"{{'raise', 'return'}}. Received: on_error={on_error!r}")
        images, questions = list(images), list(questions)
        if len(images) != len(questions):
            raise ValueError("answer_batch needs one question per image. Received: "
                             f"{len(images)} images, {len(questions)} questions")
        results: list[AnswerResult | VQAError] = []
        for start in range(0, len(images), batch_size):
            results += self._answer_some(images[start:start + batch_size],
                                         questions[start:start + batch_size], top_k, on_error)
        return results

    def explain(self, image: ImageLike, question: str, out: str | Path | BinaryIO,
                top_k: int = 3) -> AnswerResult:
        """Answer, and write a PNG to `out`: the image with the attention heat map laid
        over the part the model saw (one picture per hop when there are two), and the
        top answers with their probabilities."""
        img = to_pil(image, min_side=self._min_side)  # decoded once, for both
        result = self.answer(img, question, top_k=top_k)
        cam = None if result.attention is not None else self.grad_cam(img, question,
                                                                       result.answer)
        draw_explanation(img, result, self._seen_box(img.size), out, grad_cam=cam)
        return result

    def grad_cam(self, image: ImageLike, question: str, answer: str) -> np.ndarray | None:
        """[rows, cols] Grad-CAM of `answer` over the grid the model reads (vqa.gradcam):
        the cached one, or the small CNN's (on the TensorFlow backend); None for a
        fine-tuned backbone, or the small CNN elsewhere."""
        layer = None
        if self.config.pixels_in:  # the small CNN's grid, its "image_encoder" layer
            if self.config.train.fine_tune or keras.backend.backend() != "tensorflow":
                return None
            layer = "image_encoder"
        pixels = self._pixels(image)[None]
        tokens = self._encode(question).ids[None]
        with self._lock:
            inputs = model_inputs(self.model, self._grids(pixels), tokens)
            return grad_cam(self.model, inputs, self.answers.index[answer], layer)

    def predict_dataset(self, dataset: PreparedDataset, questions: pd.DataFrame,
                        batch_size: int = 256) -> dict[int, str]:
        """The top answer for every row of `questions` (question_id -> answer)."""
        # A missing cache is extracted with the weights this run was trained on.
        images, rows = image_table(dataset, sorted(questions["image_id"].unique()),
                                   **self.config.image_inputs(),
                                   weights=self.features.weights if self.features else None)
        if isinstance(images, FeatureCache) and (
                images.manifest.weights_sha256 != self.features.weights_sha256):
            raise FeatureCacheError(f"The {images.manifest.backbone} features in "
                                    f"{dataset.root} were made with other weights than this "
                                    "run was trained on; extract them again.")
        batches = VQABatches.from_questions(questions, images, rows, self.words,
                                            self.config.model.max_question_length,
                                            batch_size=batch_size,
                                            about_image=takes_about_image(self.model))
        # A progress bar on a terminal; silent in logs and tests.
        try:
            probs = self.model.predict(batches, verbose=1 if sys.stdout.isatty() else 0)
        finally:
            if isinstance(images, FeatureCache):
                images.close()
        best = np.argmax(probs, axis=-1)
        return {int(q): self.answers.tokens[i] for q, i in zip(questions["question_id"], best)}

    def _answer_some(self, images: list, questions: list, top_k: int,
                     on_error: str) -> list[AnswerResult | VQAError]:
        out: list[AnswerResult | VQAError | None] = [None] * len(images)
        rows, pixels, encoded = [], [], []
        for i, (image, question) in enumerate(zip(images, questions)):
            try:
                tokens = self._encode(question)  # the cheap check first
                pixels.append(self._pixels(image))
            except VQAError as exc:
                if on_error == "raise":
                    raise
                out[i] = exc
                continue
            rows.append(i)
            encoded.append(tokens)
        if rows:
            probs, hops = self._predict(np.stack(pixels), np.stack([e.ids for e in encoded]))
            means = None if hops is None else _frozen(hops.mean(axis=1))  # one map each
            for j, i in enumerate(rows):
                ranked = np.argsort(-probs[j])[:top_k]
                top = [(self.answers.tokens[a], float(probs[j, a])) for a in ranked]
                out[i] = AnswerResult(questions[i], top[0][0], top[0][1], top,
                                      encoded[j].unknown_words,
                                      None if hops is None else means[j],
                                      None if hops is None else hops[j],
                                      warnings_for(tokenize(questions[i]),
                                                   encoded[j].unknown_words, top[0][0]))
        return out

    @functools.cached_property
    def _backbone(self):
        """The backbone spec at the input size the run was trained with (found once)."""
        model = self.config.model
        return get_backbone(model.backbone, model.backbone_image_size or None)

    @property
    def _min_side(self) -> int:
        """The side images are resized to before the model (or its backbone) sees them."""
        model = self.config.model
        if model.image_encoder != "pretrained":
            return model.image_size
        return self._backbone.resize_short_side

    def _pixels(self, image: ImageLike) -> np.ndarray:
        """Pixels for the small CNN, or for the backbone (in the model when fine-tuned;
        else the image encoder, run in `_predict`)."""
        model = self.config.model
        if model.image_encoder != "pretrained":
            return load_image(image, model.image_size)
        return self._backbone.preprocess(to_pil(image, min_side=self._min_side))

    def _seen_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) of the part of a `size` image the grid covers: all
        of it for the small CNN (squeezed square), the centre crop for a backbone."""
        width, height = size
        if self.config.model.image_encoder != "pretrained":
            return 0.0, 0.0, float(width), float(height)
        side = min(width, height) * self._backbone.image_size / self._backbone.resize_short_side
        left, top = (width - side) / 2, (height - side) / 2
        return left, top, left + side, top + side

    def _grids(self, pixels: np.ndarray) -> np.ndarray:
        pixels = pixels.astype("float32")
        if self.image_encoder is None:
            return pixels
        return np.asarray(self.image_encoder.predict_on_batch(pixels))

    def _encode(self, question: str) -> Encoded:
        check_question(question)
        length = self.config.model.max_question_length
        encoded = self.words.encode_question(question, length)
        if encoded.truncated:
            log.warning("question has more than %d words; the rest is ignored: %r",
                        length, question)
        return encoded

    def _predict(self, pixels: np.ndarray, tokens: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """Answer probabilities [batch, answers], and each hop's attention [batch, hops,
        rows, cols] (each hop's map sums to 1) or None."""
        # predict_on_batch runs the compiled graph: ~2 ms where an eager call takes ~45.
        # One call at a time: Keras does not promise that threads may share a model.
        with self._lock:
            inputs = model_inputs(self.model, self._grids(pixels), tokens)
            if self._explained is None:
                return np.asarray(self.model.predict_on_batch(inputs)), None
            probs, weights = self._explained.predict_on_batch(inputs)
        hops = np.asarray(weights, dtype="float32")  # [batch, hops, cells]
        hops = (hops / hops.sum(axis=-1, keepdims=True)).reshape(
            *hops.shape[:2], *self._grid_shape)
        return np.asarray(probs), _frozen(hops)


def _frozen(maps: np.ndarray) -> np.ndarray:
    """Results are frozen; each one's maps are a view of this array, so it is read-only."""
    maps.setflags(write=False)
    return maps


def _check_runs(model: keras.Model, run: Path) -> None:
    """A model saved by an older vqa can load and yet not run, when a layer is now built
    wider (two-hop attention now hands on both glimpses): say so at load time,
    not as a shape error at the first question."""
    zeros = {t.name: np.zeros([2 if d is None else d for d in t.shape], t.dtype)
             for t in model.inputs}
    try:
        model(zeros, training=False)
    except Exception as exc:  # a shape mismatch surfaces as one of several types
        # Keras wraps the cause in a header, bold escapes and the call's arguments.
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
        cause = next((line for line in lines if line and not line.startswith(
            ("Exception encountered", "Arguments received", "•"))), type(exc).__name__)
        raise RunDirError(
            f"{run / files.MODEL} loads but does not run with this vqa (a run saved by an "
            f"older version?): {cause.rstrip('.')}. Train it again, or pass --init-from "
            f"{run} to `vqa train` to carry over the weights that still fit.") from None


def _check_top_k(top_k: int) -> None:
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer. Received: top_k={top_k!r}")
