"""A fusion and an image encoder defined here, with no other file changed, are checked,
train, save and load (safe mode) and answer: the registries are the only place the
builder looks."""

from dataclasses import replace

import keras
import numpy as np
import pytest
from conftest import TINY_CONFIG, draw_shape
from keras import ops

from vqa.config import Config, ModelConfig, load_config, save_config
from vqa.errors import ConfigError
from vqa.models.fusions import FUSIONS, fusion_options, register_fusion
from vqa.models.image_encoders import IMAGE_ENCODERS, ImageEncoder, register_image_encoder


@keras.saving.register_keras_serializable(package="tests")
@register_fusion("test_scaled_sum", reads="vector")
class ScaledSumFusion(keras.layers.Layer):
    """Project both vectors to `units` and add them, times `scale`.

    Args:
        units: size of the fused vector.
        scale: factor on the sum.
    """

    def __init__(self, units: int, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if scale <= 0:
            raise ValueError(f"scale must be positive. Received: scale={scale}")
        self.units, self.scale = units, scale
        self.project_question = keras.layers.Dense(units, name="project_question")
        self.project_image = keras.layers.Dense(units, name="project_image")

    def build(self, input_shape):
        question_shape, image_shape = input_shape
        self.project_question.build(question_shape)
        self.project_image.build(image_shape)

    def call(self, inputs):
        question, image = inputs
        return self.scale * ops.relu(
            self.project_question(question) + self.project_image(image)
        )  # [batch, units]

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "scale": self.scale}


@register_image_encoder("test_pooled")
class PooledPixels(ImageEncoder):
    """Average 4x4 patches of pixels, then one 1x1 conv: a grid with no CNN to speak of."""

    def layer(self):
        size = self.config.image_size
        return keras.Sequential(
            [
                keras.Input((size, size, 3)),
                keras.layers.Rescaling(1.0 / 255),
                keras.layers.AveragePooling2D(4, name="patches"),
                keras.layers.Conv2D(8, 1, activation="relu", name="mix"),
            ],
            name="image_encoder",
        )


def _config(**options):
    model = ModelConfig(
        **{**TINY_CONFIG.model.__dict__, "fusion": "test_scaled_sum", "fusion_options": options}
    )
    return Config(model, TINY_CONFIG.train.__class__(**{**TINY_CONFIG.train.__dict__, "epochs": 1}))


def test_the_registry_describes_the_new_fusion():
    assert FUSIONS["test_scaled_sum"] is ScaledSumFusion
    assert ScaledSumFusion.reads == "vector" and ScaledSumFusion.layer_name == "fusion"
    assert fusion_options(ScaledSumFusion) == {"scale": 1.0}
    with pytest.raises(ValueError, match="taken by"):
        register_fusion("concat")(ScaledSumFusion)

    class DropoutSum(ScaledSumFusion):
        def __init__(self, units, dropout=0.1, **kwargs):  # a config field's name
            super().__init__(units, **kwargs)

    with pytest.raises(TypeError, match=r"options \['dropout'\] have the names of config"):
        register_fusion("test_dropout_sum")(DropoutSum)
    assert "test_dropout_sum" not in FUSIONS


def test_a_fusion_and_an_image_encoder_defined_here_train_save_and_answer(tiny_dataset, tmp_path):
    from vqa.answering import Answerer
    from vqa.training import train

    assert IMAGE_ENCODERS["test_pooled"] is PooledPixels
    run, recipe = tmp_path / "run", tmp_path / "scaled-sum.yaml"
    save_config(TINY_CONFIG.with_train(epochs=1), recipe)  # the one YAML: the tiny model,
    text = recipe.read_text().replace(
        "  fusion: elementwise\n",  # with this fusion
        "  fusion: test_scaled_sum\n  scale: 2.0\n",
    )
    recipe.write_text(text.replace("image_encoder: small_cnn", "image_encoder: test_pooled"))
    assert load_config(recipe) == Config(
        replace(_config(scale=2.0).model, image_encoder="test_pooled"), _config().train
    )
    summary = train(tiny_dataset.root, run, recipe, verbose=0)
    assert summary["epochs_run"] == 1
    answerer = Answerer.load(run)  # safe_mode=True: the class is registered, no Lambda
    fusion = answerer.model.get_layer("fusion")
    assert isinstance(fusion, ScaledSumFusion) and fusion.scale == 2.0
    grid = answerer.model.get_layer("image_encoder")
    assert grid.get_layer("mix").output.shape == (None, 8, 8, 8)  # 32 pixels / 4
    result = answerer.answer(draw_shape("red", "circle"), "What color is the shape?")
    assert result.answer in answerer.answers.tokens and 0 < result.probability <= 1


def test_its_options_are_checked_before_any_data_is_read(tmp_path):
    from vqa.training import train

    with pytest.raises(
        ConfigError,
        match=r"Unknown option\(s\) \['sclae'\] of fusion "
        r"test_scaled_sum .*Did you mean 'scale' for 'sclae'\?",
    ):
        train(tmp_path / "no-such-data", tmp_path / "run", _config(sclae=2.0), verbose=0)
    with pytest.raises(ConfigError, match="scale must be positive"):
        train(tmp_path / "no-such-data", tmp_path / "run", _config(scale=-1.0), verbose=0)
    assert not (tmp_path / "run").exists()


def test_every_kind_shares_one_registry_and_its_errors():
    from vqa.models.decoders import DECODERS, CaptionDecoder, get_decoder, register_decoder
    from vqa.registry import Registry

    assert isinstance(FUSIONS, Registry) and isinstance(DECODERS, Registry)
    with pytest.raises(ConfigError, match=r"Unknown decoder 'atention'.*Did you mean 'attention'"):
        get_decoder("atention")
    with pytest.raises(TypeError, match="A decoder subclasses CaptionDecoder"):
        register_decoder("test_not_a_decoder")(keras.layers.Dense)

    class Attention(CaptionDecoder):  # another class under a taken name
        pass

    with pytest.raises(ValueError, match="decoder name 'attention' is taken"):
        register_decoder("attention")(Attention)
    assert DECODERS["attention"] is not Attention


def test_a_registered_recurrent_unit_is_a_question_encoder_and_a_decoder_cell(tmp_path):
    """One registry of recurrent units feeds both the question encoder and the caption
    decoder; an unknown name is refused in one line before any data is read."""
    from vqa.models.recurrent import RECURRENT, Recurrent, get_recurrent, register_recurrent

    @register_recurrent("test_plain")
    class Plain(Recurrent):
        layer, cell = keras.layers.SimpleRNN, keras.layers.SimpleRNNCell

    assert RECURRENT["test_plain"] is Plain and get_recurrent("lstm").states == 2
    with pytest.raises(ConfigError, match=r"Unknown recurrent unit 'lsmt'.*Did you mean 'lstm'"):
        get_recurrent("lsmt")
    with pytest.raises(TypeError, match="subclasses Recurrent"):
        register_recurrent("test_bad")(keras.layers.LSTM)

    decoder = _encodes_and_decodes("test_plain", keras.layers.SimpleRNN, 2, "attention")
    assert len(decoder.init_states) == 2  # one state a layer

    from vqa.training import train

    with pytest.raises(ConfigError, match="Unknown recurrent unit 'lsmt'"):
        train(
            tmp_path / "no-such-data",
            tmp_path / "run",
            Config(replace(TINY_CONFIG.model, question_encoder="lsmt"), TINY_CONFIG.train),
            verbose=0,
        )
    assert not (tmp_path / "run").exists()


def _encodes_and_decodes(unit: str, layer: type, layers: int, decoder_name: str):
    """A question encoder and a caption decoder of `layers` layers of `unit` build and
    run: the encoder's layers are `layer`, both outputs have their shapes. Returns the
    decoder."""
    from vqa.models.decoders import get_decoder
    from vqa.models.encoders import question_encoder

    config = ModelConfig(
        image_encoder="pretrained",
        question_encoder=unit,
        question_layers=layers,
        embedding_dim=4,
        question_dim=6,
    )
    encoder = question_encoder(config, 10)
    assert [type(x) for x in encoder.layers[1:]] == [layer] * layers
    assert tuple(encoder(np.array([[3, 4, 0]], "int32")).shape) == (1, 6)
    decoder = get_decoder(decoder_name)(
        12, cell=unit, layers=layers, units=6, word_dim=4, attention_dim=5
    )
    probs, _ = decoder([np.zeros((2, 9, 3), "float32"), np.ones((2, 4), "int32")])
    assert tuple(probs.shape) == (2, 4, 12) and len(decoder.cells) == layers
    return decoder


def test_the_vanilla_rnn_encodes_questions_and_decodes_captions_up_to_four_layers():
    _encodes_and_decodes("rnn", keras.layers.SimpleRNN, 4, "pooled")
    with pytest.raises(ConfigError, match="question_layers must be 1 to 4"):
        ModelConfig(question_layers=5)
    with pytest.raises(ConfigError, match="decoder_layers must be 1 to 4"):
        ModelConfig(decoder_layers=5)


def test_vqa_plugins_registers_a_users_components_for_every_command(tmp_path, monkeypatch, capsys):
    """`VQA_PLUGINS=module vqa ...` imports the module first (the distribute tests train
    on the tests' own backbone that way, in subprocesses); one that cannot be imported
    is a one-line error."""
    from vqa.cli import main
    from vqa.features.backbones import BACKBONES

    (tmp_path / "my_backbones.py").write_text(
        "from tiny_backbone import tiny_cnn\n"
        "from vqa.features.backbones import Backbone, register_backbone\n"
        "register_backbone(Backbone('test_mine', 16, ('m.h5', 'm.h5'), tiny_cnn))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("VQA_PLUGINS", " my_backbones, ")
    assert main(["classify", str(tmp_path / "none.png"), "--backbone", "test_mine"]) == 1
    assert "test_mine" in BACKBONES and "Unknown backbone" not in capsys.readouterr().err
    monkeypatch.setenv("VQA_PLUGINS", "no_such_module_of_mine")
    assert main(["classify", str(tmp_path / "none.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: VQA_PLUGINS names 'no_such_module_of_mine', which cannot be imported: "
        "No module named 'no_such_module_of_mine'"
    )


def test_a_backbone_registered_again_from_a_re_run_cell_replaces_itself():
    """A notebook cell run twice defines a new constructor function of the same module
    and name, and registers an equal spec: accepted. Another constructor under a taken
    name, or a spec without one, is refused."""
    from tiny_backbone import tiny_cnn

    from vqa.features.backbones import BACKBONES, Backbone, register_backbone

    def build(include_top=False, weights="imagenet", input_shape=(224, 224, 3)):
        return tiny_cnn(include_top, weights, input_shape)

    first = build
    register_backbone(Backbone("test_cell", 16, ("c.h5", "c.h5"), first))

    def build(include_top=False, weights="imagenet", input_shape=(224, 224, 3)):  # noqa: F811
        return tiny_cnn(include_top, weights, input_shape)

    assert build is not first
    register_backbone(Backbone("test_cell", 16, ("c.h5", "c.h5"), build))
    assert BACKBONES["test_cell"].constructor is build
    with pytest.raises(ValueError, match="'test_cell' is taken by another backbone"):
        register_backbone(Backbone("test_cell", 16, ("c.h5", "c.h5"), tiny_cnn))
    with pytest.raises(TypeError, match="needs a constructor"):
        register_backbone(Backbone("test_none", 16, ("n.h5", "n.h5")))
