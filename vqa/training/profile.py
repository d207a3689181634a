"""The run's image profile (vqa.runs.image_profile), written when training ends."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vqa.config import Config
from vqa.data.dataset import PreparedDataset
from vqa.runs import files
from vqa.runs.image_profile import MAX_REFERENCE, NEIGHBOURS, ImageProfile, describe

log = logging.getLogger(__name__)
MAX_HELD_OUT = 500  # held-out images that set the threshold


def write_image_profile(
    run: Path,
    dataset: PreparedDataset,
    config: Config,
    fit_images: Sequence[str],
    held_out_images: Sequence[str],
) -> ImageProfile | None:
    """Describe up to MAX_REFERENCE of the images trained on and calibrate on up to
    MAX_HELD_OUT held-out ones, read as the Answerer reads them; None (and nothing
    written) with too few of either."""
    from vqa.answering import preprocessing  # the Answerer's own pixels

    if len(set(fit_images)) <= NEIGHBOURS or not held_out_images:
        log.info("no image profile: too few training or held-out images to calibrate one")
        return None
    rng = np.random.default_rng(config.train.seed)
    pixels = preprocessing(config).pixels

    def descriptors(ids: Sequence[str], most: int) -> np.ndarray:
        ids = sorted(set(ids))
        if len(ids) > most:
            ids = [ids[i] for i in sorted(rng.choice(len(ids), most, replace=False))]
        paths = [dataset.image_root / p for p in dataset.images.loc[ids, "path"]]
        return np.concatenate(
            [
                describe(np.stack([pixels(p) for p in paths[i : i + 256]]))
                for i in range(0, len(paths), 256)
            ]
        )

    profile = ImageProfile.fit(
        descriptors(fit_images, MAX_REFERENCE), descriptors(held_out_images, MAX_HELD_OUT)
    )
    profile.save(run / files.IMAGE_PROFILE)
    return profile
