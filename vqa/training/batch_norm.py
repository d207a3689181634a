"""The image encoder's batch-norm statistics, re-estimated with each epoch's last weights
(`train.batch_norm_images`).

A batch-norm layer normalises a training batch by that batch's statistics, and keeps
running averages (momentum 0.9 in the small CNN: about its last 10 batches) for
inference. On our scenes those averages swung a reasoning model's validation accuracy
between 63% and 91% from one epoch to the next, while the same weights with the
statistics re-estimated over the training images scored 92% each time
(experiments/notes/recipes.md). So, before each validation, the statistics are
measured afresh: the image encoder (question-independent: the images alone) runs in
training mode over a fixed sample of training images, and each layer keeps the plain
mean of the batches' statistics. Nothing else changes; a resumed run re-estimates from
the same images.
"""

from __future__ import annotations

import keras
import numpy as np

from vqa.errors import ConfigError

BATCH = 64  # images a forward pass


def norm_layers(model: keras.Model) -> tuple[keras.Model, list]:
    """The image encoder that reads the images alone, and its batch-norm layers."""
    names = {layer.name for layer in model.layers}
    encoder = model.get_layer("image_encoder") if "image_encoder" in names else None
    norms = []
    if isinstance(encoder, keras.Model) and len(encoder.inputs) == 1:
        norms = [x for x in encoder.layers if isinstance(x, keras.layers.BatchNormalization)]
    if not norms:
        raise ConfigError(
            "batch_norm_images needs an image encoder with batch normalisation that reads "
            "the image alone (image_encoder: small_cnn); this model has none. Set "
            "train.batch_norm_images: 0."
        )
    return encoder, norms


class BatchNormStatistics(keras.callbacks.Callback):
    """Before each validation, each batch-norm layer of the image encoder gets the mean
    and variance of `images` (an array of model inputs), measured with the current
    weights: the mean over batches of their batch statistics."""

    def __init__(self, images: np.ndarray):
        super().__init__()
        self.images = images

    def on_test_begin(self, logs=None):
        encoder, norms = norm_layers(self.model)
        momenta = [norm.momentum for norm in norms]
        try:
            for k, start in enumerate(range(0, len(self.images), BATCH), start=1):
                for norm in norms:  # the running average of k batches: their plain mean
                    norm.momentum = 1.0 - 1.0 / k
                encoder(self.images[start : start + BATCH], training=True)
        finally:
            for norm, momentum in zip(norms, momenta):
                norm.momentum = momentum


def sample_rows(rows: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` of `rows` (all if there are fewer), sorted, the same whenever drawn with
    `seed`: which training images to re-estimate from."""
    rng = np.random.default_rng([seed, 7])
    return np.sort(rng.choice(rows, size=min(count, len(rows)), replace=False))
