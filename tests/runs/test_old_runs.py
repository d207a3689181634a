"""A run written by vqa 0.1.0 (tests/fixtures/run-0.1.0, made by make_run_0_1_0.py before
the restructure) still loads and answers as it did then: the same answers, top 3 and
probabilities, and each hop's attention map."""

import json

import numpy as np
import pytest
from conftest import FIXTURES, draw_shape


def test_a_0_1_0_run_answers_as_before():
    from vqa.answering import Answerer

    expected = json.loads((FIXTURES / "run-0.1.0-expected.json").read_text())
    answerer = Answerer.load(FIXTURES / "run-0.1.0")
    assert len(expected) == 16
    for row in expected:
        got = answerer.answer(draw_shape(*row["image"]), row["question"], top_k=3)
        assert got.answer == row["answer"]
        assert [a for a, _ in got.top_k] == [a for a, _ in row["top_k"]]
        assert got.probability == pytest.approx(row["probability"], rel=1e-5)
        assert [p for _, p in got.top_k] == pytest.approx([p for _, p in row["top_k"]], rel=1e-5)
        assert got.unknown_words == row["unknown_words"]
        np.testing.assert_allclose(got.hop_attention, row["hop_attention"], atol=1e-6)


def test_a_0_1_0_relation_run_answers_as_before():
    """Made by the 0.1.0 code itself (make_run_0_1_0_relation.py at d5bba99): its
    config.yaml says relation_layers: 2, which now loads as fusion_options depth 2."""
    from vqa.answering import Answerer

    answerer = Answerer.load(FIXTURES / "run-0.1.0-relation")
    assert dict(answerer.config.model.fusion_options) == {"depth": 2}
    assert answerer.model.get_layer("relation").depth == 2
    for row in json.loads((FIXTURES / "run-0.1.0-relation-expected.json").read_text()):
        got = answerer.answer(draw_shape(*row["image"]), row["question"], top_k=3)
        assert [a for a, _ in got.top_k] == [a for a, _ in row["top_k"]]
        assert [p for _, p in got.top_k] == pytest.approx([p for _, p in row["top_k"]], rel=1e-5)


# sum of |weights| and number of weight arrays of a model built at seed 0, as vqa 0.1.0
# (d5bba99) built it on Keras 3.15 / TensorFlow 2.21: the same seed gives the same start.
SEEDED = {
    "elementwise": (499.420746, 14),
    "mfb": (571.370789, 14),
    "relation": (868.50238, 16),
    "film": (733.089417, 26),
    "attention": (619.999268, 26),
    "conditioned-cnn": (354.797943, 24),
}
SMALL = dict(
    image_dim=8,
    embedding_dim=4,
    question_dim=8,
    fusion_dim=8,
    classifier_dim=8,
    attention_dim=8,
    backbone_image_size=64,
)
VARIANTS = {
    "elementwise": {},
    "mfb": dict(fusion="mfb"),
    "relation": dict(fusion="relation", fusion_options={"depth": 2}),
    "film": dict(fusion="film", fusion_options={"blocks": 2}),
    "attention": dict(attention_hops=2, grid_coordinates=True),
    "conditioned-cnn": dict(image_encoder="conditioned_cnn", image_size=32, cnn_filters=(8, 8)),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_same_seed_builds_the_same_initial_weights_as_0_1_0(variant):
    import keras

    from vqa.config import ModelConfig
    from vqa.features.backbones import model_grid_shape
    from vqa.models import build_model

    config = ModelConfig(**{**SMALL, **VARIANTS[variant]})
    keras.utils.set_random_seed(0)
    model = build_model(config, 20, 7, grid_shape=model_grid_shape(config))
    weights = model.get_weights()
    total = float(sum(np.abs(w).sum() for w in weights))
    assert (total, len(weights)) == (
        pytest.approx(SEEDED[variant][0], rel=1e-6),
        SEEDED[variant][1],
    )


def test_a_0_1_0_history_numbered_from_0_resumes_numbered_from_1(tmp_path):
    import pandas as pd

    from vqa.training.checkpoint import append_history

    path = tmp_path / "history.csv"
    pd.DataFrame({"epoch": [0, 1], "loss": [2.0, 1.5]}).to_csv(path, index=False)
    append_history(path, 2, {"loss": 1.2})  # Keras' index 2: the third epoch
    assert pd.read_csv(path)["epoch"].tolist() == [1, 2, 3]
