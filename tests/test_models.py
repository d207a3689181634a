import inspect

import keras
import numpy as np
import pytest

from vqa import config as config_module
from vqa.config import ModelConfig
from vqa.models import FUSIONS, ConcatFusion, ElementwiseFusion, build_model, losses
from vqa.models import builder, encoders, fusion


def _inputs(config, batch=3, vocab=10):
    rng = np.random.default_rng(0)
    return {"image": rng.integers(0, 256, (batch, *encoders.image_input_shape(config)))
            .astype("float32"),
            "question": rng.integers(0, vocab, (batch, config.max_question_length))
            .astype("int32")}


@pytest.mark.parametrize("fusion_name", sorted(FUSIONS))
@pytest.mark.parametrize("image_encoder", ["small_cnn", "pretrained"])
def test_build_and_save_round_trip(tmp_path, fusion_name, image_encoder):
    config = ModelConfig(image_encoder=image_encoder, image_size=32, cnn_filters=(4, 8),
                         image_dim=8, embedding_dim=4, question_dim=8, max_question_length=6,
                         fusion=fusion_name, fusion_dim=8, classifier_dim=8)
    model = build_model(config, vocab_size=10, num_answers=5)
    x = _inputs(config)
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    assert probs.shape == (3, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, training=False)), probs,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer_cls", [ConcatFusion, ElementwiseFusion])
def test_fusion_layer_config_and_shape(layer_cls):
    layer = layer_cls(7, name="f")
    out = layer([keras.ops.ones((2, 3)), keras.ops.ones((2, 5))])
    assert tuple(out.shape) == (2, 7)
    assert layer.compute_output_shape(((2, 3), (2, 5))) == (2, 7)
    clone = layer_cls.from_config(layer.get_config())
    assert clone.units == 7 and clone.name == "f"
    with pytest.raises(ValueError, match="units must be positive"):
        layer_cls(0)


def test_elementwise_fusion_is_a_product_of_projections():
    layer = ElementwiseFusion(4)
    q, v = np.random.rand(2, 3).astype("float32"), np.random.rand(2, 5).astype("float32")
    out = keras.ops.convert_to_numpy(layer([q, v]))
    expected = (keras.ops.convert_to_numpy(layer.project_question(q))
                * keras.ops.convert_to_numpy(layer.project_image(v)))
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_config_choices_match_the_registries():
    assert set(config_module.FUSION_CHOICES) == set(FUSIONS)
    assert set(config_module.IMAGE_ENCODER_CHOICES) == set(encoders.IMAGE_ENCODERS)
    assert set(config_module.QUESTION_ENCODER_CHOICES) == set(encoders.QUESTION_ENCODERS)
    from vqa.features.backbones import BACKBONES
    assert set(config_module.BACKBONE_CHOICES) == set(BACKBONES)


@pytest.mark.parametrize("module", [fusion, encoders, losses, builder])
def test_model_code_is_backend_agnostic(module):
    source = inspect.getsource(module)
    assert "tensorflow" not in source and "tf." not in source


def test_loss_and_metric_on_soft_targets():
    y_true = np.array([[0.0, 0.3, 1.0], [1.0, 0.0, 0.0]], dtype="float32")
    y_pred = np.array([[0.1, 0.2, 0.7], [0.2, 0.5, 0.3]], dtype="float32")
    score = keras.ops.convert_to_numpy(losses.vqa_score(y_true, y_pred))
    np.testing.assert_allclose(score, [1.0, 0.0])
    loss = keras.ops.convert_to_numpy(losses.soft_crossentropy(y_true, y_pred))
    expected0 = -(0.3 / 1.3 * np.log(0.2) + 1.0 / 1.3 * np.log(0.7))
    np.testing.assert_allclose(loss, [expected0, -np.log(0.2)], rtol=1e-5)


def test_builder_rejects_bad_sizes():
    with pytest.raises(ValueError, match="vocab_size"):
        build_model(ModelConfig(), vocab_size=2, num_answers=3)


def test_two_rate_adam_slows_only_the_named_variables():
    from vqa.models import TwoRateAdam

    fast = keras.Variable(np.zeros(3, "float32"), name="fast")
    slow = keras.Variable(np.zeros(3, "float32"), name="slow")
    optimizer = TwoRateAdam([slow.path], 0.1, learning_rate=0.01)
    grad = np.ones(3, "float32")
    optimizer.apply_gradients([(grad, fast), (grad, slow)])
    step_fast = -keras.ops.convert_to_numpy(fast)
    step_slow = -keras.ops.convert_to_numpy(slow)
    np.testing.assert_allclose(step_fast, 0.01, rtol=1e-3)  # Adam's first step is ~lr
    np.testing.assert_allclose(step_slow, 0.001, rtol=1e-3)
    clone = TwoRateAdam.from_config(optimizer.get_config())
    assert clone.slow_paths == [slow.path] and clone.slow_factor == 0.1
