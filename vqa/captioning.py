"""Describe an image with a trained caption decoder: `Captioner.load(RUN_DIR).caption(
image)`, word by word with each word's probability and where the model looked.

Decoding: "greedy" (the most probable word each step), "sample" (drawn from the
model's distribution sharpened or flattened by `temperature`; reproducible with `seed`)
and "beam" (the `beam_size` most probable partial captions kept each step; the caption
with the highest total log-probability wins, no length normalisation). All stop at the
end token or after `max_length` words.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import keras
import numpy as np

from vqa.answering import preprocessing
from vqa.config import Config, load_run_config
from vqa.data.captions import END, PAD, START, check_caption_vocabulary
from vqa.data.dataset import PreparedDataset
from vqa.data.images import ImageLike, to_pil
from vqa.data.text import Vocabulary
from vqa.errors import RunDirError, VQAError
from vqa.features.cache import FeatureCache, Manifest
from vqa.features.extract import image_table
from vqa.runs import files
from vqa.runs.image_profile import FOREIGN, ImageProfile

log = logging.getLogger(__name__)
DECODINGS = ("greedy", "sample", "beam")


@dataclass(frozen=True)
class CaptionWord:
    word: str
    probability: float  # the model's probability of this word at this step (temperature 1)
    # [rows, cols], sums to 1; None for the pooled twin
    attention: np.ndarray | None = field(repr=False, compare=False)


@dataclass(frozen=True)
class CaptionResult:
    caption: str
    words: list[CaptionWord]
    decode: str
    log_probability: float  # of the words and the end token, at temperature 1
    # Why the caption may not mean much: an image unlike the training images
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "caption": self.caption,
            "decode": self.decode,
            "log_probability": round(self.log_probability, 4),
            "warnings": list(self.warnings),
            "words": [
                {
                    "word": w.word,
                    "probability": round(w.probability, 4),
                    "attention": None if w.attention is None else np.round(w.attention, 4).tolist(),
                }
                for w in self.words
            ],
        }


class CaptionError(VQAError):
    """A decoding request that cannot be met (an unknown method, a bad beam size)."""


class Captioner:
    """A trained caption decoder with its vocabulary and preprocessing. Thread-safe:
    model calls take turns."""

    # What its training images look like (vqa.runs.image_profile); None: no such warnings
    image_profile: ImageProfile | None = None

    def __init__(
        self,
        model: keras.Model,
        config: Config,
        words: Vocabulary,
        image_encoder: keras.Model | None = None,
        features: Manifest | None = None,
    ):
        check_caption_vocabulary(words)
        self.model, self.config, self.words = model, config, words
        self.image_encoder, self.features = image_encoder, features
        self.preprocessing = preprocessing(config)
        self.decoder = model.get_layer("decoder")
        self.attends = self.decoder.attends
        self.grid_shape = tuple(model.get_layer("grid_cells").input.shape[1:3])
        self._cells = keras.Model(model.get_layer("image").output, model.get_layer("cells").output)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, run_dir: str | Path) -> Captioner:
        run = files.check_run_dir(run_dir, files.NEEDED_TO_CAPTION)
        try:
            model = keras.models.load_model(run / files.MODEL, compile=False, safe_mode=True)
            words = Vocabulary.load(run / files.CAPTION_VOCAB)
        except Exception as exc:  # Keras and json raise many types for a bad file
            raise RunDirError(f"Cannot load the captioning run {run}: {exc}") from None
        config = load_run_config(run)
        profile = ImageProfile.load(run / files.IMAGE_PROFILE)  # None: runs before profiles
        if config.pixels_in:
            return cls(model, config, words)._with(profile)
        try:
            encoder = keras.models.load_model(
                run / files.IMAGE_ENCODER, compile=False, safe_mode=True
            )
            features = Manifest.read(run / files.FEATURES)
        except Exception as exc:
            raise RunDirError(f"Cannot load the image encoder of {run}: {exc}") from None
        return cls(model, config, words, image_encoder=encoder, features=features)._with(profile)

    def _with(self, profile: ImageProfile | None) -> Captioner:
        self.image_profile = profile
        return self

    def _warned(self, pixels: np.ndarray, results: list[CaptionResult]) -> list[CaptionResult]:
        if self.image_profile is None:
            return results
        foreign = self.image_profile.is_foreign(pixels)
        return [replace(r, warnings=[FOREIGN]) if f else r for r, f in zip(results, foreign)]

    def caption(
        self,
        image: ImageLike,
        decode: str = "greedy",
        *,
        beam_size: int = 3,
        temperature: float = 1.0,
        max_length: int | None = None,
        seed: int | None = None,
    ) -> CaptionResult:
        """Describe one image (a path, PIL image, array or bytes, as `Answerer` takes)."""
        pixels = self.preprocessing.pixels(image)[None]
        found = self._decode(self._grids(pixels), decode, beam_size, temperature, max_length, seed)
        return self._warned(pixels, found)[0]

    def caption_batch(
        self, images: Sequence[ImageLike], decode: str = "greedy", **kwargs
    ) -> list[CaptionResult]:
        pixels = np.stack([self.preprocessing.pixels(image) for image in images])
        return self._warned(pixels, self._decode(self._grids(pixels), decode, **kwargs))

    def explain(
        self, image: ImageLike, out: str | Path | BinaryIO, decode: str = "greedy", **kwargs
    ) -> CaptionResult:
        """Caption, and write a PNG to `out`: the image, and under it one attention
        overlay per word (the pooled twin: the words and their probabilities only)."""
        from vqa.visualize import draw_caption  # matplotlib, only when drawing

        img = to_pil(image, min_side=self.preprocessing.min_side)
        result = self.caption(img, decode, **kwargs)
        draw_caption(img, result, self.preprocessing.seen_box(img.size), out)
        return result

    def caption_dataset(
        self,
        dataset: PreparedDataset,
        split: str,
        decode: str = "greedy",
        batch_size: int = 64,
        **kwargs,
    ) -> list[dict]:
        """One caption per image of a captions split, in COCO's results format
        [{"image_id", "caption"}]."""
        image_ids = sorted(dataset.caption_split(split)["image_id"].unique())
        images, rows = image_table(
            dataset,
            image_ids,
            **self.config.image_inputs(),
            weights=self.features.weights if self.features else None,
        )
        out = []
        try:
            for start in range(0, len(image_ids), batch_size):
                ids = image_ids[start : start + batch_size]
                block = np.asarray(images[np.array([rows[i] for i in ids])], dtype="float32")
                results = self._decode(block, decode, **kwargs)
                out += [{"image_id": i, "caption": r.caption} for i, r in zip(ids, results)]
        finally:
            if isinstance(images, FeatureCache):
                images.close()
        return out

    def _grids(self, pixels: np.ndarray) -> np.ndarray:
        pixels = pixels.astype("float32")
        if self.image_encoder is None:
            return pixels
        return np.asarray(self.image_encoder.predict_on_batch(pixels))

    def _decode(
        self,
        images: np.ndarray,
        decode: str,
        beam_size: int = 3,
        temperature: float = 1.0,
        max_length: int | None = None,
        seed: int | None = None,
    ) -> list[CaptionResult]:
        if decode not in DECODINGS:
            raise CaptionError(f"Unknown decoding {decode!r}; choose one of {list(DECODINGS)}.")
        if decode == "beam" and (not isinstance(beam_size, int) or beam_size < 1):
            raise CaptionError(f"beam_size must be a positive integer. Received: {beam_size!r}")
        if not temperature > 0:
            raise CaptionError(f"temperature must be > 0. Received: {temperature!r}")
        length = max_length or self.config.model.max_caption_length
        with self._lock:
            cells = np.asarray(self._cells.predict_on_batch(images))
            if decode == "beam":
                found = _beam(self, cells, beam_size, length)
            else:
                rng = np.random.default_rng(seed) if decode == "sample" else None
                found = _one_path(self, cells, length, rng, temperature)
        return [self._result(*f, decode) for f in found]

    def _start(self, cells: np.ndarray):
        keys, states = self.decoder.start(cells)
        return (None if keys is None else _np(keys)), [_np(s) for s in states]

    def _step(self, cells, keys, tokens, states):
        logits, alpha, states = self.decoder.step(cells, keys, tokens, states)
        logits = _np(logits).astype("float64")
        logits[:, [self.words.index[PAD], self.words.index[START]]] = -np.inf  # never said
        return logits, _np(alpha), [_np(s) for s in states]

    def _result(self, ids, probs, alphas, log_p, decode) -> CaptionResult:
        words = []
        for token, p, alpha in zip(ids, probs, alphas):
            if token == self.words.index[END]:
                break
            heat = alpha.reshape(self.grid_shape) if self.attends else None
            words.append(CaptionWord(self.words.tokens[token], float(p), heat))
        return CaptionResult(" ".join(w.word for w in words), words, decode, float(log_p))


def _np(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _one_path(c: Captioner, cells, length, rng, temperature):
    """Greedy (rng None) or sampled decoding of every image at once."""
    n = len(cells)
    keys, states = c._start(cells)
    tokens = np.full(n, c.words.index[START], dtype="int32")
    done = np.zeros(n, dtype=bool)
    ids, probs, alphas, log_p = [], [], [], np.zeros(n)
    end = c.words.index[END]
    for _ in range(length + 1):  # the words, then the end token
        logits, alpha, states = c._step(cells, keys, tokens, states)
        logp = _log_softmax(logits)
        if rng is None:
            tokens = logp.argmax(-1).astype("int32")
        else:
            p = np.exp(_log_softmax(logits / temperature))
            tokens = np.array([rng.choice(len(row), p=row / row.sum()) for row in p], dtype="int32")
        picked = logp[np.arange(n), tokens]
        log_p += np.where(done, 0.0, picked)
        ids.append(tokens)
        probs.append(np.exp(picked))
        alphas.append(alpha)
        done |= tokens == end
        if done.all():
            break
    ids, probs, alphas = np.stack(ids, 1), np.stack(probs, 1), np.stack(alphas, 1)
    return [(ids[i], probs[i], alphas[i], log_p[i]) for i in range(n)]


def _beam(c: Captioner, cells, k, length):
    """Beam search for every image at once: [n images x k beams] rows."""
    n, vocab = len(cells), len(c.words)
    end, pad = c.words.index[END], c.words.index[PAD]
    cells = np.repeat(cells, k, axis=0)
    keys, states = c._start(cells)
    tokens = np.full(n * k, c.words.index[START], dtype="int32")
    score = np.tile(np.r_[0.0, np.full(k - 1, -np.inf)], n)  # one live beam at first
    done = np.zeros(n * k, dtype=bool)
    ids = np.zeros((n * k, 0), dtype="int32")
    probs, alphas = np.zeros((n * k, 0)), np.zeros((n * k, 0, cells.shape[1]))
    for _ in range(length + 1):
        logits, alpha, states = c._step(cells, keys, tokens, states)
        logp = _log_softmax(logits)
        logp[done] = -np.inf  # a finished caption only pads on, at no cost
        logp[done, pad] = 0.0
        total = (score[:, None] + logp).reshape(n, k * vocab)
        best = np.argsort(-total, axis=1, kind="stable")[:, :k]  # [n, k]
        origin = (np.arange(n)[:, None] * k + best // vocab).ravel()
        tokens = (best % vocab).ravel().astype("int32")
        score = total[np.arange(n)[:, None], best].ravel()
        picked = logp[origin, tokens]
        ids = np.concatenate([ids[origin], tokens[:, None]], 1)
        probs = np.concatenate([probs[origin], np.exp(picked)[:, None]], 1)
        alphas = np.concatenate([alphas[origin], alpha[origin][:, None]], 1)
        states = [s[origin] for s in states]
        done = done[origin] | (tokens == end) | (tokens == pad)
        if done.all():
            break
    winners = score.reshape(n, k).argmax(1) + np.arange(n) * k
    return [(ids[w], probs[w], alphas[w], score[w]) for w in winners]
