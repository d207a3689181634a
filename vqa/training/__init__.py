"""Training: fit a model on a prepared dataset, keep the best epoch, resume after a crash.

fit.py          the fit loop (`train`), splits, vocabularies, the run's summary
checkpoint.py   per-epoch checkpoint, history and the resume state
warm_start.py   start from a finished run's weights (`--init-from`)
schedule.py     the learning-rate plan
"""

from vqa.training.checkpoint import RunCheckpoint, seed_states, set_seed_states
from vqa.training.fit import (
    build_vocabularies,
    encode_split,
    library_versions,
    split_by_image,
    train,
)
from vqa.training.warm_start import copy_weights

__all__ = [
    "RunCheckpoint",
    "build_vocabularies",
    "copy_weights",
    "encode_split",
    "library_versions",
    "seed_states",
    "set_seed_states",
    "split_by_image",
    "train",
]
