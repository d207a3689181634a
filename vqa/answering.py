"""Answer questions about images with a trained run directory.

from vqa import Answerer
answerer = Answerer.load("runs/easy-vqa")
result = answerer.answer("photo.png", "what color is the shape?", top_k=3)
result.answer, result.probability, result.top_k, result.attention
answerer.answer_batch(["a.png", "b.jpg"], ["what shape?", "what color?"])
answerer.explain("photo.png", "what color is the shape?", out="why.png")
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd

import vqa.models  # noqa: F401  (registers the custom layers before loading)
from vqa.config import Config, load_run_config
from vqa.data.batches import VQABatches
from vqa.data.dataset import PreparedDataset
from vqa.data.images import ImageLike
from vqa.data.text import Vocabulary
from vqa.errors import RunDirError
from vqa.features.backbones import get_backbone
from vqa.features.cache import FeatureCache, FeatureCacheError, Manifest
from vqa.features.extract import image_table
from vqa.inference import AnswererBase, AnswerResult, Preprocessing, format_answer
from vqa.models.builder import attention_model, model_inputs, takes_about_image
from vqa.models.gradcam import grad_cam
from vqa.runs import files
from vqa.runs.image_profile import ImageProfile
from vqa.runs.model_card import read_card

log = logging.getLogger(__name__)

__all__ = ["Answerer", "AnswerResult", "format_answer", "preprocessing"]


class Answerer(AnswererBase):
    """A trained model with its vocabularies and preprocessing (`answer`,
    `answer_batch`: vqa.inference.AnswererBase).

    One Answerer may be shared by threads: model calls take turns (a lock), image
    decoding does not.
    """

    def __init__(
        self,
        model: keras.Model,
        config: Config,
        words: Vocabulary,
        answers: Vocabulary,
        image_encoder: keras.Model | None = None,
        features: Manifest | None = None,
    ):
        super().__init__()
        self.model, self.config, self.words, self.answers = model, config, words, answers
        # Pretrained runs: the backbone (pixels -> grid) and the features it was trained on.
        self.image_encoder, self.features = image_encoder, features
        self.max_question_length = config.model.max_question_length
        self.preprocessing = preprocessing(config)
        # The same weights, also giving the attention weights; None without attention.
        self._explained, self.grid_shape = attention_model(model) or (None, None)

    @classmethod
    def load(cls, run_dir: str | Path) -> Answerer:
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
        config = load_run_config(run)
        if config.pixels_in:  # the model itself turns pixels into answers
            return cls(model, config, *vocabularies)._with_card(run)
        try:
            encoder = keras.models.load_model(
                run / files.IMAGE_ENCODER, compile=False, safe_mode=True
            )
            features = Manifest.read(run / files.FEATURES)
        except Exception as exc:  # missing or damaged files raise several types
            raise RunDirError(f"Cannot load the image encoder of {run}: {exc}") from None
        return cls(
            model, config, *vocabularies, image_encoder=encoder, features=features
        )._with_card(run)

    def _with_card(self, run: Path) -> Answerer:
        self.card = read_card(run)  # None for a run made before model cards
        self.image_profile = ImageProfile.load(run / files.IMAGE_PROFILE)  # None: older runs
        return self

    def grad_cam(self, image: ImageLike, question: str, answer: str) -> np.ndarray | None:
        """`explain`'s map for a model without attention: [rows, cols] Grad-CAM of
        `answer` over the grid the model reads (vqa.models.gradcam): the cached one, or the
        small CNN's (on the TensorFlow backend); None for a fine-tuned backbone, or the
        small CNN elsewhere."""
        layer = None
        if self.config.pixels_in:  # the small CNN's grid, its "image_encoder" layer
            if self.config.train.fine_tune or keras.backend.backend() != "tensorflow":
                return None
            layer = "image_encoder"
        pixels = self.preprocessing.pixels(image)[None]
        tokens = self._encode(question).ids[None]
        with self._lock:
            inputs = model_inputs(self.model, self._grids(pixels), tokens)
            return grad_cam(self.model, inputs, self.answers.index[answer], layer)

    def predict_dataset(
        self, dataset: PreparedDataset, questions: pd.DataFrame, batch_size: int = 256
    ) -> dict[int, str]:
        """The top answer for every row of `questions` (question_id -> answer)."""
        # A missing cache is extracted with the weights this run was trained on.
        images, rows = image_table(
            dataset,
            sorted(questions["image_id"].unique()),
            **self.config.image_inputs(),
            weights=self.features.weights if self.features else None,
        )
        if isinstance(images, FeatureCache) and (
            images.manifest.weights_sha256 != self.features.weights_sha256
        ):
            raise FeatureCacheError(
                f"The {images.manifest.backbone} features in "
                f"{dataset.root} were made with other weights than this "
                "run was trained on; extract them again."
            )
        batches = VQABatches.from_questions(
            questions,
            images,
            rows,
            self.words,
            self.config.model.max_question_length,
            batch_size=batch_size,
            about_image=takes_about_image(self.model),
        )
        # A progress bar on a terminal; silent in logs and tests.
        try:
            probs = self.model.predict(batches, verbose=1 if sys.stdout.isatty() else 0)
        finally:
            if isinstance(images, FeatureCache):
                images.close()
        best = np.argmax(probs, axis=-1)
        return {int(q): self.answers.tokens[i] for q, i in zip(questions["question_id"], best)}

    def _grids(self, pixels: np.ndarray) -> np.ndarray:
        pixels = pixels.astype("float32")
        if self.image_encoder is None:
            return pixels
        return np.asarray(self.image_encoder.predict_on_batch(pixels))

    def _run(self, pixels: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        # predict_on_batch runs the compiled graph: ~2 ms where an eager call takes ~45.
        inputs = model_inputs(self.model, self._grids(pixels), tokens)
        if self._explained is None:
            return np.asarray(self.model.predict_on_batch(inputs)), None
        probs, weights = self._explained.predict_on_batch(inputs)
        return np.asarray(probs), np.asarray(weights)

    def inference_model(self) -> keras.Model:
        """One model from what `preprocessing` gives (float32 pixels, 0-255) and token ids
        to answers: {"pixels", "question"} -> {"answers" [batch, answers]} and, with
        attention, "attention" [batch, hops, cells] (the weights `_run` gives); the
        backbone included. What `vqa export` writes."""
        size = self.preprocessing.size
        pixels = keras.Input((size, size, 3), name="pixels")
        question = keras.Input((None,), dtype="int32", name="question")
        image = pixels if self.image_encoder is None else self.image_encoder(pixels)
        inputs = {"image": image, "question": question}
        if takes_about_image(self.model):
            inputs["about_image"] = EachRow(name="about_image")(question)
        if self._explained is None:
            outputs = {"answers": self.model(inputs)}
        else:
            answers, weights = self._explained(inputs)
            outputs = {"answers": answers, "attention": weights}
        return keras.Model({"pixels": pixels, "question": question}, outputs, name="vqa_inference")


def preprocessing(config: Config) -> Preprocessing:
    """How a run's images become its model's pixels."""
    model = config.model
    if model.image_encoder != "pretrained":
        return Preprocessing("square", model.image_size)
    spec = get_backbone(model.backbone, model.backbone_image_size)
    return Preprocessing("crop", spec.image_size, spec.resize_short_side)


class EachRow(keras.layers.Layer):
    """[batch, ...] -> [batch] int32 0..batch-1: each question its own image row."""

    def call(self, x):
        return keras.ops.arange(keras.ops.shape(x)[0], dtype="int32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)


def _check_runs(model: keras.Model, run: Path) -> None:
    """A model saved by an older vqa can load and yet not run, when a layer is now built
    wider (two-hop attention now hands on both glimpses): say so at load time,
    not as a shape error at the first question."""
    zeros = {
        t.name: np.zeros([2 if d is None else d for d in t.shape], t.dtype) for t in model.inputs
    }
    try:
        model(zeros, training=False)
    except Exception as exc:  # a shape mismatch surfaces as one of several types
        # Keras wraps the cause in a header, bold escapes and the call's arguments.
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
        cause = next(
            (
                line
                for line in lines
                if line
                and not line.startswith(("Exception encountered", "Arguments received", "•"))
            ),
            type(exc).__name__,
        )
        raise RunDirError(
            f"{run / files.MODEL} loads but does not run with this vqa (a run saved by an "
            f"older version?): {cause.rstrip('.')}. Train it again, or pass --init-from "
            f"{run} to `vqa train` to carry over the weights that still fit."
        ) from None
