"""Grad-CAM's gradient against finite differences, on a small pooled model."""

import keras
import numpy as np
import pytest

from vqa.config import ModelConfig
from vqa.models import build_model
from vqa.models.gradcam import grad_cam, input_gradient


def test_the_gradient_is_the_finite_difference_and_the_map_a_distribution():
    config = ModelConfig(
        image_dim=8, embedding_dim=4, question_dim=8, fusion_dim=8, classifier_dim=8, dropout=0.0
    )
    keras.utils.set_random_seed(0)
    model = build_model(config, 12, 5, grid_shape=(3, 3, 4))
    rng = np.random.default_rng(0)
    inputs = {
        "image": rng.random((1, 3, 3, 4)).astype("float32"),
        "about_image": np.zeros(1, "int32"),
        "question": np.array([[3, 4, 5, 0]], "int32"),
    }
    gradient = input_gradient(model, inputs, 2)
    assert gradient.shape == (1, 3, 3, 4)

    def prob(image):
        return float(np.asarray(model({**inputs, "image": image}, training=False))[0, 2])

    step = 1e-2
    for index in [(0, 0, 0, 0), (0, 1, 2, 3), (0, 2, 1, 1)]:
        up, down = inputs["image"].copy(), inputs["image"].copy()
        up[index] += step
        down[index] -= step
        numeric = (prob(up) - prob(down)) / (2 * step)
        assert gradient[index] == pytest.approx(numeric, rel=0.05, abs=1e-5)
    cam = grad_cam(model, inputs, 2)
    assert cam.shape == (3, 3) and (cam >= 0).all() and cam.sum() == pytest.approx(1)


def test_a_small_cnn_run_explains_with_the_grad_cam_of_its_own_grid(tiny_run, tmp_path):
    from conftest import draw_shape

    from vqa.answering import Answerer

    run, _ = tiny_run  # small CNN, no attention: the grid is its CNN's, 8 x 8
    answerer = Answerer.load(run)
    image = draw_shape("blue", "circle")
    result = answerer.explain(image, "what shape is in the image?", tmp_path / "why.png")
    cam = answerer.grad_cam(image, "what shape is in the image?", result.answer)
    assert result.attention is None and cam.shape == (8, 8)
    assert (cam >= 0).all() and cam.sum() == pytest.approx(1)
    assert (tmp_path / "why.png").stat().st_size > 10_000
