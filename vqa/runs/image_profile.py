"""What a run's training images look like, and when an image is unlike all of them.

Training ends by writing RUN_DIR/image_profile.npz: a descriptor of a sample of the
training images (numpy only, so a TensorFlow-free bundle carries it too), and a threshold
calibrated on the run's held-out validation images. An image whose descriptor lies
further from its nearest training image than that gets `FOREIGN` among its answer's
warnings: a photo of a cat asked of a model trained on coloured shapes.

The descriptor reads the model's own input pixels (`Preprocessing.pixels`): the image at
8 x 8 (its layout and colours), a histogram of each channel (its palette) and its mean
edge strength at two scales (flat synthetic shapes against photographs' texture).
Distances are standardised per dimension by the training images' spread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FOREIGN = "this image is unlike the training images; answers may be meaningless"
NEIGHBOURS = 1  # the nearest training image: a small set's few kinds of image each count
QUANTILE = 0.99  # of the held-out images' distances: about 1 in 100 of them warned
MARGIN = 1.25  # times that: a few held-out images set no exact edge
MIN_HELD_OUT = 50  # with fewer, the training images' distances to each other count too
MAX_REFERENCE = 2000  # training images kept (float16): under 1 MB


def describe(pixels: np.ndarray) -> np.ndarray:
    """[n, size, size, 3] pixels (0-255) -> [n, 218] float32 descriptors."""
    x = np.asarray(pixels, dtype=np.float32) / 255.0
    n, h, w, _ = x.shape
    # 8 x 8 block means (any size: the blocks split it as evenly as they can)
    rows, cols = np.linspace(0, h, 9).astype(int), np.linspace(0, w, 9).astype(int)
    small = np.stack(
        [
            x[:, rows[i] : rows[i + 1], cols[j] : cols[j + 1]].mean(axis=(1, 2))
            for i in range(8)
            for j in range(8)
        ],
        axis=1,
    ).reshape(n, -1)  # [n, 192]
    bins = np.minimum((x * 8).astype(np.int64), 7) + 8 * np.arange(3)  # [n, h, w, 3]: 0..23
    bins = bins.reshape(n, -1) + 24 * np.arange(n)[:, None]
    hist = np.bincount(bins.ravel(), minlength=24 * n).reshape(n, 24) / (h * w)  # [n, 24]
    grey = x.mean(axis=-1)
    half = grey[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    edges = np.stack(
        [
            np.abs(np.diff(grey, axis=1)).mean(axis=(1, 2))
            + np.abs(np.diff(grey, axis=2)).mean(axis=(1, 2)),
            np.abs(np.diff(half, axis=1)).mean(axis=(1, 2))
            + np.abs(np.diff(half, axis=2)).mean(axis=(1, 2)),
        ],
        axis=1,
    )  # [n, 2]
    return np.concatenate([small, hist, edges], axis=1).astype(np.float32)


@dataclass
class ImageProfile:
    """The training images' descriptors (standardised) and the distance beyond which an
    image is foreign."""

    mean: np.ndarray  # [D]
    scale: np.ndarray  # [D]
    reference: np.ndarray  # [m, D], standardised
    threshold: float

    @classmethod
    def fit(cls, training: np.ndarray, held_out: np.ndarray, seed: int = 0) -> ImageProfile:
        """From the descriptors of training images and of held-out images of the same
        distribution (the threshold: QUANTILE of their distances)."""
        if len(training) <= NEIGHBOURS or not len(held_out):
            raise ValueError(
                f"An image profile needs more than {NEIGHBOURS} training images and one "
                f"held-out image. Received: {len(training)} and {len(held_out)}"
            )
        rng = np.random.default_rng(seed)
        if len(training) > MAX_REFERENCE:
            training = training[rng.choice(len(training), MAX_REFERENCE, replace=False)]
        mean = training.mean(axis=0)
        # A floor on the spread: a dimension constant in training (a plain background)
        # still counts, but one pixel of noise there is not a new world.
        scale = np.maximum(training.std(axis=0), 0.02)
        profile = cls(mean, scale, ((training - mean) / scale).astype(np.float16), 0.0)
        seen = profile.distance(held_out)
        if len(held_out) < MIN_HELD_OUT:  # too few to place a quantile on: add each
            # training image's distance to its nearest other
            seen = np.concatenate([seen, profile.distance(training, leave_one_out=True)])
        profile.threshold = MARGIN * float(np.quantile(seen, QUANTILE))
        return profile

    def distance(self, descriptors: np.ndarray, leave_one_out: bool = False) -> np.ndarray:
        """[n, D] -> [n]: root-mean-square distance to the NEIGHBOURS nearest training
        images, in standardised units per dimension; `leave_one_out`: the descriptors are
        the training images' own, in order, each not its own neighbour."""
        z = (np.asarray(descriptors, np.float32) - self.mean) / self.scale  # [n, D]
        ref = self.reference.astype(np.float32)
        squared = (z * z).sum(1)[:, None] - 2 * z @ ref.T + (ref * ref).sum(1)[None, :]
        if leave_one_out:
            np.fill_diagonal(squared, np.inf)
        nearest = np.sort(np.maximum(squared, 0.0), axis=1)[:, :NEIGHBOURS]
        return np.sqrt(nearest.mean(axis=1) / z.shape[1])

    def is_foreign(self, pixels: np.ndarray) -> np.ndarray:
        """[n, size, size, 3] pixels -> [n] bool."""
        return self.distance(describe(pixels)) > self.threshold

    def save(self, path: str | Path) -> None:
        from vqa.runs.atomic import atomic_write

        with atomic_write(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                mean=self.mean,
                scale=self.scale,
                reference=self.reference,
                threshold=np.float64(self.threshold),
            )

    @classmethod
    def load(cls, path: str | Path) -> ImageProfile | None:
        """The profile at `path`; None where there is none (runs before profiles)."""
        if not Path(path).is_file():
            return None
        with np.load(path) as data:
            return cls(data["mean"], data["scale"], data["reference"], float(data["threshold"]))
