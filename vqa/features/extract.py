"""Extracting a dataset's grid features into the cache of vqa.features.cache, and
`image_table`: what a model's image input is gathered from (extracting first if need be).

Extraction is resumable: every chunk is written to a temporary name and renamed, so a
killed run leaves only whole chunks, and a rerun computes only the missing ones. When
every chunk exists the parts are merged into the .h5 (also via a temporary name). With
`shard=(i, N)` a process computes chunks i, i+N, i+2N, ...; the last shard to finish
merges, or `merge_parts` does it. Chunks and batches are fixed by the manifest, so the
result is the same however the work was split or interrupted.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import keras
import numpy as np

from vqa.data.dataset import PreparedDataset
from vqa.features.backbones import get_backbone
from vqa.features.cache import (
    DTYPES,
    FeatureCache,
    FeatureCacheError,
    Manifest,
    _check_same,
    _ids_sha256,
    feature_paths,
    input_size,
    weights_fingerprint,
)
from vqa.runs import locks
from vqa.runs.atomic import atomic_write, temp_path

log = logging.getLogger(__name__)


def extract_features(
    dataset: PreparedDataset,
    backbone: str,
    weights: str | Path | None = None,
    *,
    image_size: int = 0,
    batch_size: int | None = None,
    dtype: str = "float16",
    shard: tuple[int, int] = (0, 1),
    chunk_size: int = 256,
    progress: bool | None = None,
) -> Path | None:
    """Compute (or finish computing) the feature cache of every image in `dataset`, with
    the backbone at `image_size` (0: the size that suits the dataset's images, as a
    config's backbone_image_size 0 picks it). `batch_size` None: as many images as make
    32 at 224 px (256 at 64 px), so that memory stays the same at every size. Images are
    decoded one batch ahead, in a thread, while the network runs.

    Returns the .h5 path once every chunk is done and merged, or None when other
    shards still have chunks to compute.
    """
    if dtype not in DTYPES:
        raise FeatureCacheError(f"Invalid dtype {dtype!r}. Expected one of {list(DTYPES)}.")
    index, count = shard
    if not (count >= 1 and 0 <= index < count):
        raise FeatureCacheError(f"Invalid shard {index}/{count}: expected 0 <= i < N.")
    spec = get_backbone(backbone, input_size(dataset, image_size))
    if batch_size is None:
        batch_size = max(1, min(256, round(32 * (224 / spec.image_size) ** 2)))
    if batch_size < 1 or chunk_size < 1:
        raise FeatureCacheError("batch_size and chunk_size must be at least 1.")
    h5_path, manifest_path, parts = feature_paths(dataset, backbone, spec.image_size)
    lock = parts.parent / f".{h5_path.stem}.shard{index}of{count}.lock"
    with locks.exclusive_file(
        lock, f"extracting shard {index}/{count} of {h5_path.name}", FeatureCacheError
    ):
        return _extract(
            dataset,
            backbone,
            spec,
            weights,
            dtype,
            (index, count),
            batch_size,
            chunk_size,
            progress,
        )


def _extract(
    dataset: PreparedDataset,
    backbone: str,
    spec,
    weights,
    dtype: str,
    shard: tuple[int, int],
    batch_size: int,
    chunk_size: int,
    progress: bool | None,
) -> Path | None:
    index, count = shard
    model = spec.build(include_top=False, weights=weights)
    image_ids = sorted(dataset.images.index)
    manifest = Manifest(
        backbone,
        None if weights is None else str(Path(weights).resolve()),
        weights_fingerprint(model),
        spec.input_protocol,
        spec.image_size,
        (spec.grid_size, spec.grid_size, spec.grid_channels),
        dtype,
        len(image_ids),
        _ids_sha256(image_ids),
        chunk_size,
        batch_size,
    )
    h5_path, manifest_path, parts = feature_paths(dataset, backbone, spec.image_size)
    parts.parent.mkdir(exist_ok=True)
    if manifest_path.is_file():
        _check_same(Manifest.read(manifest_path), manifest, manifest_path)
        if h5_path.is_file():
            log.info("features already extracted: %s", h5_path)
            return h5_path
    else:
        if parts.exists():  # parts without a manifest: settings unknown, start again
            shutil.rmtree(parts)
        manifest.write(manifest_path)
    parts.mkdir(exist_ok=True)

    chunks = range(math.ceil(len(image_ids) / chunk_size))
    todo = [c for c in chunks if c % count == index and not _part(parts, c).is_file()]
    n_todo = sum(len(image_ids[c * chunk_size : (c + 1) * chunk_size]) for c in todo)
    log.info(
        "extracting %s features: %d of %d images left%s",
        backbone,
        n_todo,
        len(image_ids),
        f" for shard {index}/{count}" if count > 1 else "",
    )
    show = sys.stdout.isatty() if progress is None else progress
    bar = keras.utils.Progbar(n_todo, unit_name="image") if show and n_todo else None
    chunk_ids = {c: image_ids[c * chunk_size : (c + 1) * chunk_size] for c in todo}
    work = [
        (c, start, ids[start : start + batch_size])
        for c, ids in chunk_ids.items()
        for start in range(0, len(ids), batch_size)
    ]

    def load(item):
        return spec.load_pixels([dataset.image_path(i) for i in item[2]]).astype("float32")

    for (c, start, batch), pixels in zip(work, _ahead(load, work)):
        if start == 0:
            out = np.empty((len(chunk_ids[c]), *manifest.grid), dtype=dtype)
        if len(batch) < batch_size and len(work) > 1:  # a new shape would trace the
            pixels = np.concatenate(  # network again, which costs more than the padding
                [pixels, np.repeat(pixels[-1:], batch_size - len(batch), axis=0)]
            )
        grids = np.asarray(model.predict_on_batch(pixels))
        out[start : start + len(batch)] = grids[: len(batch)]
        if bar is not None:
            bar.add(len(batch))
        if start + len(batch) == len(out):  # the chunk is complete
            with atomic_write(_part(parts, c)) as tmp:
                np.save(tmp, out)
    if all(_part(parts, c).is_file() for c in chunks):
        return merge_parts(dataset, backbone, spec.image_size)
    log.info("shard %d/%d done; other shards still have chunks to compute", index, count)
    return None


def merge_parts(dataset: PreparedDataset, backbone: str, image_size: int = 0) -> Path:
    """Merge finished chunks into the .h5 cache, then remove them."""
    h5_path, manifest_path, parts = feature_paths(dataset, backbone, image_size)
    manifest = Manifest.read(manifest_path)
    image_ids = sorted(dataset.images.index)
    if _ids_sha256(image_ids) != manifest.image_ids_sha256:
        raise FeatureCacheError(
            f"{manifest_path} was made for other images; delete "
            f"{manifest_path.parent} and extract again."
        )
    n_chunks = math.ceil(len(image_ids) / manifest.chunk_size)
    missing = [c for c in range(n_chunks) if not _part(parts, c).is_file()]
    if missing:
        raise FeatureCacheError(
            f"{len(missing)} of {n_chunks} chunks are not extracted yet "
            f"(e.g. {_part(parts, missing[0])}); run vqa extract for "
            "every shard first."
        )
    tmp = temp_path(h5_path)
    try:
        with h5py.File(tmp, "w") as f:
            features = f.create_dataset(
                "features",
                (len(image_ids), *manifest.grid),
                dtype=manifest.dtype,
                chunks=(1, *manifest.grid),
            )
            f.create_dataset(
                "image_id", data=np.array(image_ids, dtype=object), dtype=h5py.string_dtype()
            )
            for c in range(n_chunks):
                part = np.load(_part(parts, c))
                rows = len(image_ids[c * manifest.chunk_size : (c + 1) * manifest.chunk_size])
                if part.shape != (rows, *manifest.grid) or part.dtype != manifest.dtype:
                    raise FeatureCacheError(
                        f"{_part(parts, c)} does not fit {manifest_path} "
                        f"(shape {part.shape}, dtype {part.dtype})."
                    )
                features[c * manifest.chunk_size : c * manifest.chunk_size + rows] = part
    except FileNotFoundError:  # another shard merged (and removed the parts) meanwhile
        tmp.unlink(missing_ok=True)
        if h5_path.is_file():
            return h5_path
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, h5_path)
    shutil.rmtree(parts, ignore_errors=True)
    log.info("features merged into %s", h5_path)
    return h5_path


def _ahead(load, items):
    """load(item) for each item, in order, computed one item ahead in a thread."""
    with ThreadPoolExecutor(1) as pool:
        pending = None
        for item in items:
            submitted = pool.submit(load, item)
            if pending is not None:
                yield pending.result()
            pending = submitted
        if pending is not None:
            yield pending.result()


def _part(parts: Path, chunk: int) -> Path:
    return parts / f"{chunk:06d}.npy"


def image_table(
    dataset: PreparedDataset,
    image_ids: Sequence[str],
    *,
    backbone: str | None,
    image_size: int,
    fine_tune: bool = False,
    weights: str | None = None,
) -> tuple[np.ndarray | FeatureCache, dict[str, int]]:
    """What a model's "image" input is gathered from, and the row of each image id.

    `backbone` None: decoded pixels at `image_size` (the small CNN). Else that backbone
    at input size `image_size` (0: the dataset's own): its preprocessed pixels with
    `fine_tune`, otherwise its feature cache, extracted first (with `weights`, None for
    the ImageNet ones) if it is missing.
    """
    if backbone is None:
        return dataset.load_images(image_ids, image_size)
    size = input_size(dataset, image_size)
    if fine_tune:
        spec = get_backbone(backbone, size)
        pixels = spec.load_pixels([dataset.image_path(i) for i in image_ids])
        return pixels, {image_id: i for i, image_id in enumerate(image_ids)}
    h5_path, _, _ = feature_paths(dataset, backbone, size)
    if not h5_path.is_file():
        log.info("no %s feature cache in %s yet: extracting it", h5_path.stem, dataset.root)
        extract_features(dataset, backbone, weights, image_size=size)
    cache = FeatureCache.open(dataset, backbone, size)
    return cache, cache.rows
