"""Grid features of a dataset's images, computed once by a pretrained backbone.

    DATA/features/<name>.h5    "features" [n, g, g, C] (float16 by default),
                               "image_id" [n]; one HDF5 chunk per image
    DATA/features/<name>.json  manifest: backbone, weights fingerprint, image size,
                               grid shape, dtype, image count, chunking
    DATA/features/<name>.parts/  work in progress: one .npy per chunk of images

<name> is the backbone's (efficientnet_lite0), with the input size appended when it is
not the backbone's own 224 (efficientnet_lite0-64px).

Written by vqa.features.extract (resumable, shardable); read here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import keras
import numpy as np

from vqa.data.dataset import PreparedDataset
from vqa.errors import VQAError
from vqa.features.backbones import get_backbone
from vqa.runs.atomic import write_json

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
