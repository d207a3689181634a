"""Importing TensorFlow without its start-up chatter.

TensorFlow's C++ logging prints CPU-feature and oneDNN notes when it is imported, which
neither TF_CPP_MIN_LOG_LEVEL nor Python's logging silences; they are not for the users of
`vqa`'s API or CLI. Standard library only: `import vqa` stays light.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType


def import_quietly(module: str = "keras") -> ModuleType:
    """Import `module` with file descriptor 2 sent to /dev/null while Keras (and so
    TensorFlow) loads for the first time; an import error is raised after stderr is
    restored. Once Keras is loaded, a plain import."""
    if "keras" in sys.modules:
        return importlib.import_module(module)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            return importlib.import_module(module)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
