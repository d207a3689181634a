"""Every registered component, checked the same way (issue 36): a small model with it,
and the rest at its defaults, builds, trains a step, saves, reloads in safe mode and
answers as it did. The lists come from the registries, so a new component is checked
without a line here; those the tests register themselves (`test_...`) are checked in
their own files."""

import keras
import numpy as np
import pytest
from conftest import SMALL_MODEL

from vqa.config import ModelConfig
from vqa.models import build_captioner, build_model, soft_crossentropy
from vqa.models.attention import ATTENTIONS
from vqa.models.decoders import DECODERS
from vqa.models.fusions import FUSIONS
from vqa.models.image_encoders import IMAGE_ENCODERS, get_image_encoder
from vqa.models.recurrent import RECURRENT

SMALL = dict(
    SMALL_MODEL,
    image_encoder="small_cnn",
    backbone_image_size=64,  # pretrained: a 2x2 grid of 1,280 channels
    decoder_dim=8,
    word_dim=4,
    max_caption_length=5,
    attention_penalty=0.0,  # soft attention's term; hard attention refuses one
)


def _each(registry, field: str, **beside) -> list:
    return [
        pytest.param({field: name, **beside}, id=f"{field}={name}")
        for name in registry
        if not name.startswith("test_")
    ]


ANSWERERS = [
    *_each(IMAGE_ENCODERS, "image_encoder"),
    *_each(RECURRENT, "question_encoder"),
    *_each(ATTENTIONS, "attention", attention_hops=1),
    *[
        pytest.param(
            {"fusion": name, **({"fusion_options": {"channels": 4}} if name == "referent" else {})},
            id=f"fusion={name}",
        )
        for name in FUSIONS
        if not name.startswith("test_")
    ],
]
CAPTIONERS = [
    *_each(DECODERS, "decoder"),
    *_each(RECURRENT, "decoder_cell", decoder="attention"),
]


def _grid(config: ModelConfig):
    from vqa.features.backbones import model_grid_shape

    return model_grid_shape(config)


def _images(config: ModelConfig, n: int) -> np.ndarray:
    shape = get_image_encoder(config).input_shape(_grid(config))
    return np.random.default_rng(0).integers(0, 256, (n, *shape)).astype("float32")


# Steps run eagerly: what is checked is that gradients reach the weights and the trained
# model saves, not the traced training graph (the training tests run that), and tracing
# would cost seconds a component.


def _round_trip(model: keras.Model, x: dict, path) -> None:
    """After a training step, the reloaded model (safe mode) gives the same output."""
    before = keras.ops.convert_to_numpy(model(x, training=False))
    assert np.isfinite(before).all()
    model.save(path)
    loaded = keras.models.load_model(path, compile=False, safe_mode=True)
    after = keras.ops.convert_to_numpy(loaded(x, training=False))
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ANSWERERS)
def test_every_registered_component_answers_after_a_step_and_a_reload(variant, tmp_path):
    config = ModelConfig(**{**SMALL, **variant})
    model = build_model(config, vocab_size=10, num_answers=5, grid_shape=_grid(config))
    rng = np.random.default_rng(1)
    x = {
        "image": _images(config, 2),
        "about_image": np.array([0, 1, 1, 0], "int32"),  # two questions an image
        "question": rng.integers(1, 10, (4, config.max_question_length)).astype("int32"),
    }
    y = np.eye(5, dtype="float32")[[0, 1, 2, 3]]
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=soft_crossentropy, run_eagerly=True)
    weights = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    _round_trip(model, x, tmp_path / "model.keras")


@pytest.mark.parametrize("variant", CAPTIONERS)
def test_every_registered_decoder_and_cell_captions_after_a_step_and_a_reload(variant, tmp_path):
    config = ModelConfig(**{**SMALL, **variant})
    model = build_captioner(config, vocab_size=12, grid_shape=_grid(config))
    rng = np.random.default_rng(1)
    caption = rng.integers(1, 12, (2, config.max_caption_length)).astype("int32")
    x = {"image": _images(config, 2), "caption": caption}
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        run_eagerly=True,
    )
    assert np.isfinite(model.train_on_batch(x, np.roll(caption, -1, axis=1)))
    _round_trip(model, x, tmp_path / "captioner.keras")
