"""Training: fit a model on a prepared dataset, keep the best epoch, resume after a crash.

fit.py          the one fit loop (`train`), the run's summary
tasks.py        what each task trains on: answering questions, captioning images
inputs.py       the split by image, the vocabularies, the encoded batches
tf_data.py      in-memory batches gathered by tf.data (the TensorFlow backend)
distribute.py   the distribution strategies (--strategy)
checkpoint.py   per-epoch checkpoint, history, the resume state, TensorBoard, versions
warm_start.py   start from a finished run's weights (`--init-from`)
schedule.py     the learning-rate plan
"""

from vqa.training.checkpoint import RunCheckpoint, library_versions, seed_states, set_seed_states
from vqa.training.fit import train
from vqa.training.inputs import build_vocabularies, encode_split, split_by_image
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
