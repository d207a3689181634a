"""Operating-system locks on what one process writes at a time (a run directory while
it trains, a shard of a feature cache while it is extracted). The kernel drops a lock
when its process ends, however it ends, so a crash or kill -9 never leaves a directory
locked."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vqa.errors import RunDirError

try:
    import fcntl
except ImportError:  # Windows: no flock; nothing is locked there
    fcntl = None


@contextmanager
def exclusive(path: str | Path, what: str) -> Iterator[Path]:
    """Hold the lock of directory `path` (made if missing, and removed again at the end
    if it is still empty) while in the block. RunDirError if another process holds it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        yield path  # not a directory: whoever writes there says so
        return
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    fd = _lock(path, what)
    try:
        yield path
    finally:
        try:
            if created and not any(path.iterdir()):
                path.rmdir()
        finally:
            if fd is not None:
                os.close(fd)


@contextmanager
def exclusive_file(path: str | Path, what: str, error: type = RunDirError) -> Iterator[None]:
    """Hold the lock of file `path` (made if missing and left in place: removing it would
    let a third process lock a new file while the second still holds the old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    fd = _flock(
        os.open(path, os.O_RDWR | os.O_CREAT, 0o644),
        error(f"{path.parent} is in use: another vqa process is {what}. Wait for it to end."),
    )
    try:
        yield
    finally:
        os.close(fd)


def check_free(path: str | Path, what: str) -> None:
    """Raise RunDirError now if another process holds `path`'s lock (a check before the
    slow start of a command; `exclusive` takes the lock itself)."""
    path = Path(path)
    if path.is_dir():
        fd = _lock(path, what)
        if fd is not None:
            os.close(fd)


def _lock(path: Path, what: str) -> int | None:
    if fcntl is None:
        return None
    return _flock(
        os.open(path, os.O_RDONLY),
        RunDirError(
            f"{path} is in use: another vqa process is {what} there. Wait for it to end, or "
            "choose another directory."
        ),
    )


def _flock(fd: int, refusal: Exception) -> int:
    """Lock `fd` without waiting; if another process holds it, close `fd`, raise
    `refusal`."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise refusal from None
    return fd
