"""Answer questions about images with a trained run directory.

    from vqa import Answerer
    answerer = Answerer.load("runs/easy-vqa")
    result = answerer.answer("photo.png", "what color is the shape?", top_k=3)
    result.answer, result.probability, result.top_k
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd

import vqa.models  # noqa: F401  (registers the custom layers before loading)
from vqa import run_dir as files
from vqa.config import Config, load_config
from vqa.data.batches import VQABatches
from vqa.data.dataset import PreparedDataset
from vqa.data.images import ImageLike, load_image, to_pil
from vqa.data.text import Vocabulary, check_question
from vqa.errors import RunDirError
from vqa.features.backbones import get_backbone
from vqa.features.cache import FeatureCache, FeatureCacheError, Manifest, image_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerResult:
    """The model's answer to one question."""

    question: str
    answer: str
    probability: float
    top_k: list[tuple[str, float]]  # best first
    unknown_words: list[str] = field(default_factory=list)  # words the model never saw


class Answerer:
    """A trained model with its vocabularies and preprocessing."""

    def __init__(self, model: keras.Model, config: Config, words: Vocabulary,
                 answers: Vocabulary, image_encoder: keras.Model | None = None,
                 features: Manifest | None = None):
        self.model, self.config, self.words, self.answers = model, config, words, answers
        # Pretrained runs: the backbone (pixels -> grid) and the features it was trained on.
        self.image_encoder, self.features = image_encoder, features

    @classmethod
    def load(cls, run_dir: str | Path) -> "Answerer":
        run = files.check_run_dir(run_dir)
        try:
            model = keras.models.load_model(run / files.MODEL, compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises many types for a bad archive
            raise RunDirError(f"Cannot load {run / files.MODEL}: {exc}") from None
        vocabularies = []
        for name in (files.QUESTION_VOCAB, files.ANSWER_VOCAB):
            try:
                vocabularies.append(Vocabulary.load(run / name))
            except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
                raise RunDirError(f"Cannot read {run / name}: {exc}") from None
        config = load_config(run / files.CONFIG)
        if config.pixels_in:  # the model itself turns pixels into answers
            return cls(model, config, *vocabularies)
        try:
            encoder = keras.models.load_model(run / files.IMAGE_ENCODER, compile=False,
                                              safe_mode=True)
            features = Manifest.read(run / files.FEATURES)
        except Exception as exc:  # missing or damaged files raise several types
            raise RunDirError(f"Cannot load the image encoder of {run}: {exc}") from None
        return cls(model, config, *vocabularies, image_encoder=encoder, features=features)

    def answer(self, image: ImageLike, question: str, top_k: int = 3) -> AnswerResult:
        """Answer one question about one image.

        Args:
            image: a file path, a PIL image, or an H x W x 3 uint8 array.
            question: free text; case and punctuation do not matter.
            top_k: how many ranked answers to return in `top_k`.
        """
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer. Received: top_k={top_k!r}")
        encoded = self._encode(question)
        probs = self._predict(self._image_input(image)[None], encoded.ids[None])[0]
        ranked = np.argsort(-probs)[:top_k]
        top = [(self.answers.tokens[i], float(probs[i])) for i in ranked]
        return AnswerResult(question, top[0][0], top[0][1], top, encoded.unknown_words)

    def predict_dataset(self, dataset: PreparedDataset, questions: pd.DataFrame,
                        batch_size: int = 256) -> dict[int, str]:
        """The top answer for every row of `questions` (question_id -> answer)."""
        # A missing cache is extracted with the weights this run was trained on.
        images, rows = image_table(dataset, self.config, sorted(questions["image_id"].unique()),
                                   weights=self.features.weights if self.features else None)
        if isinstance(images, FeatureCache) and (
                images.manifest.weights_sha256 != self.features.weights_sha256):
            raise FeatureCacheError(f"The {images.manifest.backbone} features in "
                                    f"{dataset.root} were made with other weights than this "
                                    "run was trained on; extract them again.")
        batches = VQABatches.from_questions(questions, images, rows, self.words,
                                            self.config.model.max_question_length,
                                            batch_size=batch_size)
        # A progress bar on a terminal; silent in logs and tests.
        try:
            probs = self.model.predict(batches, verbose=1 if sys.stdout.isatty() else 0)
        finally:
            if isinstance(images, FeatureCache):
                images.close()
        best = np.argmax(probs, axis=-1)
        return {int(q): self.answers.tokens[i] for q, i in zip(questions["question_id"], best)}

    def _image_input(self, image: ImageLike) -> np.ndarray:
        """Pixels for the small CNN; the backbone's pixels when it is inside the model
        (fine-tuned); else the backbone's grid, computed here."""
        model = self.config.model
        if model.image_encoder != "pretrained":
            return load_image(image, model.image_size)
        pixels = get_backbone(model.backbone).preprocess(to_pil(image))
        if self.image_encoder is None:
            return pixels
        return np.asarray(self.image_encoder.predict_on_batch(pixels[None].astype("float32")))[0]

    def _encode(self, question: str):
        check_question(question)
        length = self.config.model.max_question_length
        encoded = self.words.encode_question(question, length)
        if encoded.truncated:
            log.warning("question has more than %d words; the rest is ignored: %r",
                        length, question)
        return encoded

    def _predict(self, images: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        # predict_on_batch runs the compiled graph: ~2 ms where an eager call takes ~45.
        out = self.model.predict_on_batch({"image": images.astype("float32"),
                                           "question": tokens})
        return np.asarray(out)
