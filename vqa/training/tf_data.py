"""On the TensorFlow backend, the batches of `VQABatches` gathered inside tf.data.

Keras feeds a PyDataset to TensorFlow through `tf.data.Dataset.from_generator`, one
Python call per batch. On 2 CPU cores that hand-off costs more than a small model's
step: an epoch of the Sort-of-CLEVR recipe took 31-45 s that way against 15 s with the
same batches gathered by tf.data (benchmarks/reasoning_speed.py), and most of the
difference was system time in thread wake-ups. Here Python is called once an epoch, for
that epoch's plan (which rows make each batch, in `VQABatches`' own order, so a resumed
run still sees what an uninterrupted one saw); the gathering runs in TensorFlow.
"""

from __future__ import annotations

import keras
import numpy as np

from vqa.data.batches import VQABatches


def gathered_in_tf(batches: VQABatches):
    """A tf.data.Dataset giving `batches`' batches, one epoch each time it is iterated
    (epoch after epoch for a shuffled one, from its current epoch on); None where it
    does not apply: another backend, images not in memory (a feature cache), no targets.
    """
    if (
        keras.backend.backend() != "tensorflow"
        or not isinstance(batches.images, np.ndarray)
        or batches.targets is None
        or not batches.about_image
    ):
        return None
    import tensorflow as tf

    images = tf.constant(batches.images)
    questions = tf.constant(batches.questions)
    targets = batches.targets.tocsr()
    n_answers = targets.shape[1]
    score_rows = tf.RaggedTensor.from_row_splits(
        tf.constant(targets.data, "float32"), tf.constant(targets.indptr, "int64")
    )
    answer_rows = tf.RaggedTensor.from_row_splits(
        tf.constant(targets.indices, "int64"), tf.constant(targets.indptr, "int64")
    )
    epoch = [batches.epoch]

    def plan() -> tuple[np.ndarray, ...]:
        """The next epoch's batches as flat rows and each batch's lengths."""
        if batches.shuffle:
            batches.start_epoch(epoch[0])
            epoch[0] += 1
        parts = [batches.batch_rows(i) for i in range(len(batches))]
        flat = [np.concatenate([p[k] for p in parts]).astype("int64") for k in range(3)]
        lengths = [np.array([len(p[k]) for p in parts], "int64") for k in range(3)]
        return (*flat, *lengths)

    # No autograph (plain tensor code): it would also leave generated files in the
    # temporary directory, which a worker's run must leave empty.
    @tf.autograph.experimental.do_not_convert
    def epoch_batches(_):
        arrays = tf.numpy_function(plan, [], [tf.int64] * 6, stateful=True)
        ragged = [
            tf.RaggedTensor.from_row_lengths(tf.reshape(values, [-1]), tf.reshape(lengths, [-1]))
            for values, lengths in zip(arrays[:3], arrays[3:])
        ]
        return tf.data.Dataset.from_tensor_slices(tuple(ragged))

    @tf.autograph.experimental.do_not_convert
    def gather(rows, image_rows, about_image):
        scores = tf.gather(score_rows, rows)  # [batch, (answers)]
        answers = tf.gather(answer_rows, rows)
        where = tf.stack([tf.cast(scores.value_rowids(), "int64"), answers.flat_values], 1)
        y = tf.scatter_nd(where, scores.flat_values, tf.stack([tf.size(rows, "int64"), n_answers]))
        x = {
            "image": tf.gather(images, image_rows),
            "about_image": tf.cast(about_image, "int32"),
            "question": tf.gather(questions, rows),
        }
        return x, y

    steps = len(batches)
    return (
        tf.data.Dataset.range(1)
        .flat_map(epoch_batches)
        .map(gather, num_parallel_calls=1, deterministic=True)
        .apply(tf.data.experimental.assert_cardinality(steps))
        .prefetch(2)
    )
