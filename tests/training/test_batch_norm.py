"""The image encoder's batch-norm statistics re-estimated before validation
(`train.batch_norm_images`)."""

import keras
import numpy as np
import pytest
from conftest import SMALL_MODEL

from vqa.config import ModelConfig, TrainConfig
from vqa.errors import ConfigError
from vqa.models import build_model
from vqa.training.batch_norm import BATCH, BatchNormStatistics, norm_layers, sample_rows


def test_each_layer_gets_the_mean_of_the_batches_statistics_with_the_current_weights():
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(**SMALL_MODEL, image_encoder="small_cnn"), 10, 5)
    encoder, norms = norm_layers(model)
    assert [n.name for n in norms] == ["bn0", "bn1"]
    for norm in norms:  # running averages far from anything the images give
        norm.moving_mean.assign(np.full(norm.moving_mean.shape, 50.0))
        norm.moving_variance.assign(np.full(norm.moving_variance.shape, 1e-4))
    images = np.random.default_rng(0).integers(0, 256, (BATCH + 16, 32, 32, 3)).astype("uint8")
    callback = BatchNormStatistics(images)
    callback.set_model(model)
    callback.on_test_begin()
    # bn0's input: the first strided conv of the rescaled pixels, in two batches (64, 16).
    conv = keras.Model(encoder.inputs, encoder.get_layer("bn0").input)
    x = [keras.ops.convert_to_numpy(conv([images[s : s + BATCH]])) for s in (0, BATCH)]
    mean = np.mean([b.mean(axis=(0, 1, 2)) for b in x], axis=0)  # each batch counts once
    variance = np.mean([b.var(axis=(0, 1, 2)) for b in x], axis=0)
    np.testing.assert_allclose(norms[0].moving_mean.numpy(), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norms[0].moving_variance.numpy(), variance, rtol=1e-3, atol=1e-5)
    assert 0 < norms[1].moving_variance.numpy().min() and norms[1].moving_mean.numpy().max() < 50
    assert [n.momentum for n in norms] == [0.9, 0.9]  # the layers' own, as before


def test_the_sample_is_distinct_training_images_the_same_for_a_seed():
    rows = np.unique(np.array([3, 3, 0, 5, 5, 5, 1]))  # the images the questions are about
    one, again = (sample_rows(rows, 3, seed=4) for _ in range(2))
    np.testing.assert_array_equal(one, again)
    assert len(np.unique(one)) == 3 and set(one) <= {0, 1, 3, 5}
    assert len(sample_rows(rows, 100, seed=4)) == 4  # no more than there are


def test_a_model_without_such_an_encoder_and_a_negative_count_are_refused_in_one_line():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ConfigError, match="batch_norm_images needs an image encoder"):
        norm_layers(model)
    with pytest.raises(ConfigError, match="batch_norm_images must be >= 0"):
        TrainConfig(batch_norm_images=-1)
