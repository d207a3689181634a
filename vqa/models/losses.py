"""Training objective and metric for soft VQA targets.

Targets are per-answer VQA scores in [0, 1] (1 for the single reference answer of
easy-VQA or CLEVR; 0.3/0.6/0.9/1 for human answer counts in VQA v2).
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="vqa")
def soft_crossentropy(y_true, y_pred):  # [batch, answers] x2 -> [batch]
    """Cross-entropy against the targets renormalised to a distribution."""
    target = y_true / ops.maximum(ops.sum(y_true, axis=-1, keepdims=True), 1e-8)
    return -ops.sum(target * ops.log(ops.clip(y_pred, 1e-7, 1.0)), axis=-1)  # [batch]


@keras.saving.register_keras_serializable(package="vqa")
def vqa_score(y_true, y_pred):  # [batch, answers] x2 -> [batch]
    """The VQA score of the top answer: the target value at the argmax."""
    top = ops.one_hot(ops.argmax(y_pred, axis=-1), ops.shape(y_pred)[-1])
    return ops.sum(y_true * top, axis=-1)  # [batch]
