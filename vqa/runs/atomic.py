"""Writing a file so that a reader (or a crash) sees the old one or the new one, never
half of one: write next to it under a temporary name, then rename it into place.

One naming scheme for every temporary file: `NAME.tmpPID.EXT` (model.tmp123.keras,
history.tmp123.csv), the extensions kept last for the writers that insist on them
(Keras, h5py, numpy), the process id so that concurrent writers (feature shards) never
share one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# NAME.tmpPID.EXT; vqa 0.1.0 wrote NAME.tmp.keras and NAME.EXT.tmp, which a crash may
# have left in a run directory.
_TEMP = re.compile(r"\.tmp\d*(?=\.|$)")


def temp_path(path: str | Path) -> Path:
    """Where to write `path` before renaming it into place."""
    path = Path(path)
    stem, dot, extensions = path.name.partition(".")
    return path.with_name(f"{stem}.tmp{os.getpid()}{dot}{extensions}")


def original_name(name: str) -> str:
    """The file a temporary name was for ("model.tmp12.keras" -> "model.keras"); other
    names are returned as they are."""
    return _TEMP.sub("", name, count=1)


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield the temporary path to write; on success it replaces `path`, on an error it
    is removed and `path` is left as it was."""
    tmp = temp_path(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # on disk before the rename commits it
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def write_json(data: object, path: str | Path) -> None:
    write_text(path, json.dumps(data, indent=2))
