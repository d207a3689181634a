"""Grid features of a dataset's images, computed once by a pretrained backbone.

    DATA/features/<name>.h5    "features" [n, g, g, C] (float16 by default),
                               "image_id" [n]; one HDF5 chunk per image
    DATA/features/<name>.json  manifest: backbone, weights fingerprint, image size,
                               grid shape, dtype, image count, chunking
    DATA/features/<name>.parts/  work in progress: one .npy per chunk of images

<name> is the backbone's (efficientnet_lite0), with the input size appended when it is
not the backbone's own 224 (efficientnet_lite0-64px).

Extraction is resumable: every chunk is written to a temporary name and renamed, so a
killed run leaves only whole chunks, and a rerun computes only the missing ones. When
every chunk exists the parts are merged into the .h5 (also via a temporary name). With
`shard=(i, N)` a process computes chunks i, i+N, i+2N, ...; the last shard to finish
merges, or `merge_parts` does it. Chunks and batches are fixed by the manifest, so the
result is the same however the work was split or interrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import keras
import numpy as np

from vqa import locks
from vqa.atomic import atomic_write, temp_path, write_json
from vqa.data.dataset import PreparedDataset
from vqa.errors import VQAError
from vqa.features.backbones import get_backbone

log = logging.getLogger(__name__)
DTYPES = ("float16", "float32")


class FeatureCacheError(VQAError):
    """A feature cache is missing, incomplete, or made with other settings."""


@dataclass(frozen=True)
class Manifest:
    backbone: str
    weights: str | None  # the weights file given, or None for the backbone's ImageNet weights
    weights_sha256: str  # of the network's weight values, whatever file they came from
    input_protocol: str  # resizing, cropping and normalisation of the pixels
    image_size: int
    grid: tuple[int, int, int]
    dtype: str
    n_images: int
    image_ids_sha256: str
    chunk_size: int
    batch_size: int

    # Where the weights file lies and the batch size do not change the features that
    # matter: a resume on another machine or with another --batch-size is accepted.
    NOT_COMPARED = ("weights", "batch_size")

    def same_features(self, other: Manifest) -> dict[str, tuple]:
        """The fields that differ in a way that changes the features ({} if none)."""
        return {
            k: (getattr(self, k), getattr(other, k))
            for k in asdict(self)
            if k not in self.NOT_COMPARED and getattr(self, k) != getattr(other, k)
        }

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text())
            data["grid"] = tuple(data["grid"])
            return cls(**data)
        except (ValueError, TypeError, KeyError) as exc:
            raise FeatureCacheError(
                f"{path} is not a manifest this version can read ({exc}); "
                f"delete {path.parent / path.stem}.* and extract again."
            ) from None

    def write(self, path: Path) -> None:
        write_json(asdict(self), path)


def input_size(dataset: PreparedDataset, image_size: int = 0) -> int:
    """`image_size`, or with 0 the backbone input size that suits the dataset's images
    (as for a config's backbone_image_size 0)."""
    return image_size or dataset.backbone_input_size()


def feature_paths(
    dataset: PreparedDataset, backbone: str, image_size: int = 0
) -> tuple[Path, Path, Path]:
    """(features .h5, manifest .json, parts dir) for a backbone in a dataset, at an input
    size (0: the one that suits the dataset)."""
    root = dataset.root / "features"
    name = backbone
    image_size = input_size(dataset, image_size)
    if image_size != get_backbone(backbone).image_size:
        name = f"{backbone}-{image_size}px"
    return root / f"{name}.h5", root / f"{name}.json", root / f"{name}.parts"


def weights_fingerprint(model: keras.Model) -> str:
    digest = hashlib.sha256()
    for w in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(w)).tobytes())
    return digest.hexdigest()


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
        "extracting %s features: %d of %d images left for shard %d/%d",
        backbone,
        n_todo,
        len(image_ids),
        index,
        count,
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


class FeatureCache:
    """Read-only access to a finished cache, row by row; never loads the whole file.

    `cache[rows]` returns the features of those rows (any order, repeats allowed), so it
    stands in for an in-memory image array in VQABatches.
    """

    def __init__(self, path: Path, manifest: Manifest):
        self.path, self.manifest = path, manifest
        self._file = h5py.File(path, "r")
        self._features = self._file["features"]
        self.image_ids = [
            s.decode() if isinstance(s, bytes) else s for s in self._file["image_id"][:]
        ]
        self.rows = {image_id: i for i, image_id in enumerate(self.image_ids)}
        self._offsets = self._chunk_offsets()
        self._fd = os.open(path, os.O_RDONLY) if self._offsets is not None else None

    def _chunk_offsets(self) -> np.ndarray | None:
        """Where in the file each row's bytes are, when every row is one uncompressed
        chunk (as `merge_parts` writes them); None otherwise. Reading those bytes with
        os.pread skips HDF5's per-read overhead (0.15 ms a row here), which was most
        of a training step's wait for data."""
        features = self._features
        if (
            features.chunks != (1, *features.shape[1:])
            or features.compression
            or features.shuffle
            or features.fletcher32
            or features.scaleoffset
        ):
            return None
        row_bytes = features.dtype.itemsize * int(np.prod(features.shape[1:]))
        offsets = np.full(features.shape[0], -1, dtype=np.int64)
        plain = [True]

        def visit(info) -> None:  # one pass over HDF5's chunk index, not a lookup per row
            plain[0] &= info.size == row_bytes and not info.filter_mask
            offsets[info.chunk_offset[0]] = info.byte_offset

        features.id.chunk_iter(visit)
        return offsets if plain[0] and (offsets >= 0).all() else None

    @classmethod
    def open(cls, dataset: PreparedDataset, backbone: str, image_size: int = 0) -> FeatureCache:
        h5_path, manifest_path, _ = feature_paths(dataset, backbone, image_size)
        if not h5_path.is_file() or not manifest_path.is_file():
            size = f" --backbone-image-size {image_size}" if image_size else ""
            raise FeatureCacheError(
                f"No {h5_path.stem} features in {dataset.root}: run "
                f"`vqa extract {dataset.root} --backbone {backbone}{size}`."
            )
        return cls(h5_path, Manifest.read(manifest_path))

    @property
    def shape(self) -> tuple[int, ...]:
        return self._features.shape

    def __len__(self) -> int:
        return self._features.shape[0]

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        if self._offsets is not None:  # each row read straight into its place
            block = np.empty((len(rows), *self._features.shape[1:]), self._features.dtype)
            for out, i in zip(block, rows):
                view = memoryview(out.reshape(-1).view(np.uint8))
                if os.preadv(self._fd, [view], int(self._offsets[i])) != view.nbytes:
                    raise FeatureCacheError(
                        f"{self.path} ends early (row {i}); extract the features again."
                    )
            return block
        unique, inverse = np.unique(rows, return_inverse=True)
        # One read per row: h5py's fancy indexing is ~60x slower for scattered rows.
        block = np.stack([self._features[int(i)] for i in unique])
        return block[inverse]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._file.close()

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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


def _ids_sha256(image_ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(image_ids).encode()).hexdigest()


def _check_same(found: Manifest, wanted: Manifest, path: Path) -> None:
    diff = found.same_features(wanted)
    if diff:
        changes = ", ".join(f"{k}: {a} != {b}" for k, (a, b) in diff.items())
        raise FeatureCacheError(
            f"{path} was made with other settings ({changes}). Delete "
            f"{path.parent / path.stem}.* to extract again with these."
        )


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


def backbone_for_answering(manifest: Manifest) -> keras.Model:
    """The backbone network exactly as it made the cached features (checked)."""
    model = get_backbone(manifest.backbone, manifest.image_size).build(
        include_top=False, weights=manifest.weights
    )
    if weights_fingerprint(model) != manifest.weights_sha256:
        raise FeatureCacheError(
            f"The {manifest.backbone} weights now loaded differ from the "
            "ones that made the cached features; extract again."
        )
    return model
