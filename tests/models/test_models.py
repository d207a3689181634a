import inspect

import keras
import numpy as np
import pytest
from conftest import SMALL_MODEL

from vqa.config import ModelConfig
from vqa.features.backbones import grid_shape
from vqa.models import (
    FUSIONS,
    ConcatFusion,
    ElementwiseFusion,
    attention,
    build_model,
    builder,
    encoders,
    fusions,
    losses,
)
from vqa.models import grid as grid_helpers
from vqa.models.attention import StackedAttention
from vqa.models.fusions import FiLMModule, MFBFusion, RelationModule
from vqa.models.image_encoders import (
    IMAGE_ENCODERS,
    ConditionedCNN,
    SmallCNN,
    get_image_encoder,
)


def _grid(config):
    """The cached grid's shape for a pretrained encoder (the caller's job, not the model's)."""
    if config.image_encoder != "pretrained":
        return None
    return grid_shape(config.backbone, config.backbone_image_size)


def build(config, *args, **kwargs):
    return build_model(config, *args, grid_shape=_grid(config), **kwargs)


def _inputs(config, batch=3, vocab=10):
    rng = np.random.default_rng(0)
    return {
        "image": rng.integers(
            0, 256, (batch, *get_image_encoder(config).input_shape(_grid(config)))
        ).astype("float32"),
        "about_image": np.arange(batch, dtype="int32"),
        "question": rng.integers(0, vocab, (batch, config.max_question_length)).astype("int32"),
    }


SMALL = SMALL_MODEL
VARIANTS = [  # every fusion with and without attention, relations, encoders, baselines
    *[
        dict(fusion=f, attention_hops=h)
        for f in ("concat", "elementwise", "mfb")
        for h in (0, 1, 2)
    ],
    dict(fusion="relation", fusion_options={"depth": 2}),
    dict(fusion="film", fusion_options={"blocks": 2}),
    dict(fusion="referent", fusion_options={"blocks": 1, "channels": 4, "depth": 2}),
    dict(fusion="referent", fusion_options={"blocks": 0, "referents": 2}),
    dict(
        fusion="referent",
        fusion_options={
            "blocks": 0,
            "referents": 2,
            "composed_find": True,
            "descriptive_words": True,
            "ordered_descriptions": True,
            "describe_penalty": 0.1,
            "describe_penalty_from": 3,
            "relate_pick": True,
        },
        attention_words=True,
        attention_word_embeddings=True,
    ),
    dict(fusion="elementwise", attention_hops=1, grid_coordinates=True),
    dict(fusion="concat", attention_hops=2, attention_words=True, question_layers=2),
    dict(
        fusion="elementwise",
        attention_hops=2,
        attention_words=True,
        attention_counts=True,
        attention_relative=True,
        grid_coordinates=True,
    ),
    dict(
        fusion="elementwise", attention_hops=2, attention_words=True, attention_word_embeddings=True
    ),
    dict(fusion="concat", pool_grid="flatten"),
    dict(question_encoder="gru", question_layers=2, bidirectional=True),
    dict(question_encoder="lstm", question_layers=3),
    dict(inputs="question"),
    dict(inputs="image"),
]


@pytest.mark.parametrize(
    "variant", VARIANTS, ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items())
)
def test_build_and_save_round_trip(tmp_path, variant):
    """Combinations of options on the small CNN's grid; each image encoder, with a
    training step, in tests/test_components.py."""
    config = ModelConfig(image_encoder="small_cnn", **SMALL, **variant)
    model = build(config, vocab_size=10, num_answers=5)
    x = _inputs(config)
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    assert probs.shape == (3, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x, training=False)), probs, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "variant",
    [
        dict(),
        dict(image_encoder="conditioned_cnn"),
        dict(attention_hops=2, grid_coordinates=True),
        dict(image_encoder="pretrained", fusion="relation"),
    ],
    ids=["cnn", "conditioned", "attention", "pretrained-relation"],
)
def test_each_image_once_gives_what_a_copy_per_question_gives(variant):
    config = ModelConfig(**{"image_encoder": "small_cnn", **SMALL, **variant})
    model = build(config, vocab_size=10, num_answers=5)
    once = _inputs(config, batch=5)
    once["image"] = once["image"][:2]
    once["about_image"] = np.array([1, 0, 1, 1, 0], dtype="int32")
    copies = {
        **once,
        "image": once["image"][once["about_image"]],
        "about_image": np.arange(5, dtype="int32"),
    }
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(once, training=False)),
        keras.ops.convert_to_numpy(model(copies, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )
    assert builder.model_inputs(model, copies["image"], copies["question"]).keys() == copies.keys()
    # The questions' input comes first in key order: Keras weighs a batch's logged loss
    # by the length of the first.
    assert sorted(once)[0] == "about_image"


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
    expected = keras.ops.convert_to_numpy(layer.project_question(q)) * keras.ops.convert_to_numpy(
        layer.project_image(v)
    )
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_the_registries_hold_the_built_in_components():
    assert {"concat", "elementwise", "mfb", "relation", "film", "referent"} <= set(FUSIONS)
    assert {n for n, c in FUSIONS.items() if c.reads == "grid"} >= {"relation", "film", "referent"}
    assert {"small_cnn", "conditioned_cnn", "pretrained"} <= set(IMAGE_ENCODERS)
    from vqa.models.recurrent import RECURRENT

    assert {"lstm", "gru"} <= set(RECURRENT)
    from vqa.features.backbones import BACKBONES

    assert {"efficientnet_lite0", "mobilenet_v2", "resnet50", "efficientnet_b0"} <= set(BACKBONES)


def test_the_chrono_lstm_starts_with_long_memories_and_keeps_its_trained_biases(tmp_path):
    from vqa.models.recurrent import RECURRENT, ChronoLSTMLayer

    assert "lstm_chrono" in RECURRENT and RECURRENT.named("lstm_chrono").states == 2
    keras.utils.set_random_seed(0)
    ids = keras.Input((None, 4))
    layer = ChronoLSTMLayer(64, name="chrono")
    model = keras.Model(ids, layer(ids))
    i, f, c, o = np.split(keras.ops.convert_to_numpy(layer.cell.bias), 4)
    # Keras' own LSTM starts every forget gate at 1: about 3 steps of memory
    assert f.min() >= 0 and f.max() <= np.log(39) + 1e-5 and f.std() > 0.5
    np.testing.assert_array_equal(i, -f)
    assert not c.any() and not o.any()
    layer.cell.bias.assign(layer.cell.bias + 0.25)  # as if trained
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")  # safe mode
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(again.get_layer("chrono").cell.bias),
        keras.ops.convert_to_numpy(layer.cell.bias),
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(backbone="vgg99"), "Unknown backbone 'vgg99'.*register_backbone adds one"),
        (dict(backbone="mobilenet"), "Did you mean 'mobilenet_v2'"),
    ],
)
def test_the_backbone_is_checked_against_its_registry_when_a_run_starts(tmp_path, kwargs, match):
    from vqa.config import Config
    from vqa.errors import ConfigError
    from vqa.training import train

    with pytest.raises(ConfigError, match=match):
        train(tmp_path / "no-such-data", tmp_path / "run", Config(ModelConfig(**kwargs)), verbose=0)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "module",
    [
        fusions.concat,
        fusions.elementwise,
        fusions.mfb,
        fusions.relation,
        fusions.film,
        grid_helpers,
        encoders,
        losses,
        builder,
        attention,
    ],
)
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
        build(ModelConfig(), vocab_size=2, num_answers=3)


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


def test_attention_weights_are_reachable_and_sum_to_one():
    config = ModelConfig(image_encoder="small_cnn", attention_hops=2, **SMALL)
    model = build(config, vocab_size=10, num_answers=5)
    probe, grid = builder.attention_model(model)
    assert grid == (8, 8)  # 32 px -> 8x8 grid
    probs, weights = (keras.ops.convert_to_numpy(t) for t in probe(_inputs(config)))
    assert probs.shape == (3, 5) and weights.shape == (3, 2, 8 * 8)  # 32 px -> 8x8 grid
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
    assert (
        builder.attention_model(build(ModelConfig(image_encoder="small_cnn", **SMALL), 10, 5))
        is None
    )


def test_stacked_attention_gives_every_hops_glimpse_where_its_weights_say():
    layer = StackedAttention(4, hops=2)
    cells = np.random.rand(2, 6, 3).astype("float32")
    glimpses, weights = layer([np.random.rand(2, 5).astype("float32"), cells])
    weights = keras.ops.convert_to_numpy(weights)  # [batch, hops, cells]
    assert not np.allclose(weights[:, 0], weights[:, 1])  # the second hop looks again
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(glimpses),  # [batch, 2 * 3]
        np.concatenate(
            [np.einsum("bn,bnd->bd", weights[:, hop], cells) for hop in range(2)], axis=-1
        ),
        rtol=1e-5,
    )
    assert StackedAttention.from_config(layer.get_config()).hops == 2


def _word_attention(states, ids, hops=2):
    """A StackedAttention reading words, its word reading switched on (W_c random)."""
    layer = StackedAttention(4, hops=hops, words=True)
    cells = np.random.default_rng(1).random((2, 6, 3)).astype("float32")
    question = np.random.default_rng(2).random((2, 5)).astype("float32")
    inputs = [question, cells, states, ids]
    layer(inputs)
    return layer, inputs


def test_word_reading_starts_switched_off_and_skips_the_padding():
    rng = np.random.default_rng(0)
    states = rng.random((2, 4, 5)).astype("float32")
    ids = np.array([[3, 4, 0, 0], [5, 6, 7, 8]], dtype="int32")
    layer, inputs = _word_attention(states, ids)
    plain = StackedAttention(4, hops=2)
    plain(inputs[:2])
    plain.set_weights(layer.get_weights()[: len(plain.weights)])  # the word layers come last
    for ours, theirs in zip(layer(inputs), plain(inputs[:2])):  # W_c = 0: no change yet
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs), rtol=1e-6
        )
    for value in layer.word_value:  # switched on, the words move the weights
        value.kernel.assign(rng.normal(size=value.kernel.shape).astype("float32"))
    moved = keras.ops.convert_to_numpy(layer(inputs)[1])
    assert not np.allclose(moved, keras.ops.convert_to_numpy(plain(inputs[:2])[1]), atol=1e-3)
    # What sits at the padded steps of the first question does not matter.
    noisy = states.copy()
    noisy[0, 2:] = rng.random((2, 5)) * 100
    again = keras.ops.convert_to_numpy(layer([*inputs[:2], noisy, ids])[1])
    np.testing.assert_allclose(again, moved, rtol=1e-5)
    noisy[0, 1] += 1.0  # but a real word's state does
    assert not np.allclose(
        keras.ops.convert_to_numpy(layer([*inputs[:2], noisy, ids])[1])[0], moved[0], atol=1e-4
    )
    clone = StackedAttention.from_config(layer.get_config())
    assert clone.words and clone.hops == 2


def test_counts_are_each_hops_sigmoid_scores_summed_before_the_glimpses():
    rng = np.random.default_rng(0)
    question = rng.random((2, 5)).astype("float32")
    cells = rng.random((2, 9, 3)).astype("float32")
    layer = StackedAttention(4, hops=2, counts=True)
    out, weights = (keras.ops.convert_to_numpy(t) for t in layer([question, cells]))
    assert out.shape == (2, 2 + 2 * 3)
    layer.count_shift.assign(np.array([0.5, -1.0], dtype="float32"))
    out, weights = (keras.ops.convert_to_numpy(t) for t in layer([question, cells]))
    # Softmax weights are the scores less their log-sum-exp: the scores up to a shift.
    u = layer.query(question)
    for hop in range(2):
        s = keras.ops.convert_to_numpy(
            layer._scores(
                layer.score_cells[hop], layer.score_query[hop], layer.score[hop], cells, u
            )
        )
        np.testing.assert_allclose(
            out[:, hop], (1 / (1 + np.exp(-(s + [0.5, -1.0][hop])))).sum(-1), rtol=1e-5
        )
        u = u + np.einsum("bn,bnd->bd", weights[:, hop], cells)
    np.testing.assert_allclose(
        out[:, 2:],
        np.concatenate(  # then the glimpses, as without
            [np.einsum("bn,bnd->bd", weights[:, hop], cells) for hop in range(2)], -1
        ),
        rtol=1e-5,
    )
    plain = StackedAttention(4, hops=2)
    plain([question, cells])
    plain.set_weights([w.numpy() for w in layer.weights if w is not layer.count_shift])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(plain([question, cells])[0]), out[:, 2:], rtol=1e-5
    )
    assert StackedAttention.from_config(layer.get_config()).counts


def test_relative_hops_score_offsets_from_where_the_last_hop_looked():
    layer = StackedAttention(4, hops=2, relative=True)
    grid = np.random.default_rng(0).random((1, 3, 3, 2)).astype("float32")
    cells = grid.reshape(1, 9, 2)
    question = np.random.default_rng(1).random((1, 5)).astype("float32")
    layer([question, cells])
    # Positions in the order the builder flattens the grid, as GridCoordinates gives them.
    xy = keras.ops.convert_to_numpy(grid_helpers.with_coordinates(grid))[..., -2:].reshape(9, 2)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer._positions("float32")), xy)
    plain = StackedAttention(4, hops=2)
    plain([question, cells])
    offset = layer.offsets[0].kernel
    plain.set_weights([w.numpy() for w in layer.weights if w is not offset])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer([question, cells])[1]),
        keras.ops.convert_to_numpy(plain([question, cells])[1]),
        rtol=1e-6,
    )  # W_r = 0: the same layer as without
    # W_r scoring dx alone: the second hop favours the cells right of where the first looked.
    kernel = np.zeros((3, 4), dtype="float32")
    kernel[0] = 5.0
    layer.offsets[0].kernel.assign(kernel)
    layer.score[1].kernel.assign(np.full((4, 1), 5.0, dtype="float32"))
    weights = keras.ops.convert_to_numpy(layer([question, cells])[1])[0]
    looked_x = weights[0] @ xy[:, 0]
    right = xy[:, 0] > looked_x
    assert weights[1][right].sum() > 0.9
    with pytest.raises(ValueError, match="relative needs hops >= 2"):
        StackedAttention(4, hops=1, relative=True)
    with pytest.raises(ValueError, match="square grid"):
        StackedAttention(4, hops=2, relative=True)([question, cells[:, :8]])
    assert StackedAttention.from_config(layer.get_config()).relative


def test_word_attention_model_reads_the_last_state_as_its_question_vector():
    config = ModelConfig(image_encoder="small_cnn", attention_hops=2, attention_words=True, **SMALL)
    model = build(config, vocab_size=10, num_answers=5)
    encoder = model.get_layer("question_encoder")
    ids = np.array([[3, 4, 5, 0, 0, 0]], dtype="int32")
    states = keras.ops.convert_to_numpy(encoder(ids))  # [1, 6, question_dim]
    last = keras.ops.convert_to_numpy(model.get_layer("question_vector")(encoder(ids)))
    np.testing.assert_allclose(last, states[:, 2], rtol=1e-6)  # the third word's state


def test_word_embeddings_reach_the_hops_next_to_the_states():
    config = ModelConfig(
        image_encoder="small_cnn",
        attention_hops=2,
        attention_words=True,
        attention_word_embeddings=True,
        **SMALL,
    )
    model = build(config, vocab_size=10, num_answers=5)
    encoder = model.get_layer("question_encoder")
    ids = np.array([[3, 4, 5, 0, 0, 0]], dtype="int32")
    words = keras.Model(model.inputs, model.get_layer("word_states").output)
    x = {**_inputs(config, batch=1), "question": ids}
    read = keras.ops.convert_to_numpy(words(x))  # [1, 6, question_dim + embedding_dim]
    np.testing.assert_allclose(
        read[..., : SMALL["question_dim"]], keras.ops.convert_to_numpy(encoder(ids)[0]), rtol=1e-6
    )
    np.testing.assert_allclose(
        read[..., SMALL["question_dim"] :],
        keras.ops.convert_to_numpy(encoder.get_layer("word_embedding")(ids)),
        rtol=1e-6,
    )  # the same embedding
    assert (
        model.get_layer("attention").word_keys[0].kernel.shape[0]
        == SMALL["question_dim"] + SMALL["embedding_dim"]
    )


def test_relation_module_is_g_averaged_over_every_pair():
    layer = RelationModule(4, depth=1)
    question = np.random.rand(2, 3).astype("float32")
    grid = np.random.rand(2, 2, 3, 5).astype("float32")
    out = keras.ops.convert_to_numpy(layer([question, grid]))
    # The same sum, written out pair by pair with the layer's own weights.
    ys, xs = np.linspace(-1, 1, 2), np.linspace(-1, 1, 3)
    cells = np.concatenate(
        [grid, np.broadcast_to(np.stack(np.meshgrid(xs, ys), -1), (2, 2, 3, 2))], -1
    ).reshape(2, 6, 7)
    w1, b1 = (keras.ops.convert_to_numpy(w) for w in layer.first_cell.weights)
    w2 = keras.ops.convert_to_numpy(layer.second_cell.kernel)
    wq = keras.ops.convert_to_numpy(layer.question.kernel)
    wf, bf = (keras.ops.convert_to_numpy(w) for w in layer.f.weights)
    total = np.zeros((2, 4))
    for i in range(6):
        for j in range(6):
            total += np.maximum(cells[:, i] @ w1 + b1 + cells[:, j] @ w2 + question @ wq, 0)
    np.testing.assert_allclose(out, np.maximum(total / 36 @ wf + bf, 0), rtol=1e-4, atol=1e-5)


def test_film_blocks_are_modulated_by_the_question():
    layer = FiLMModule(6, blocks=2)
    rng = np.random.default_rng(0)
    grid = rng.random((2, 3, 3, 5)).astype("float32")
    questions = [rng.random((2, 4)).astype("float32") for _ in range(2)]
    out = [keras.ops.convert_to_numpy(layer([q, grid])) for q in questions]
    assert out[0].shape == (2, 6) and not np.allclose(out[0], out[1])
    for film in layer.films:  # gamma = 1, beta = 0: plain residual blocks
        film.set_weights([np.zeros_like(w) for w in film.get_weights()])
    plain = [keras.ops.convert_to_numpy(layer([q, grid])) for q in questions]
    np.testing.assert_allclose(plain[0], plain[1])
    film = layer.films[-1]  # a shift of every channel in the last block: the output moves
    film.set_weights([film.get_weights()[0], np.full(12, 0.5, "float32")])
    assert not np.allclose(keras.ops.convert_to_numpy(layer([questions[0], grid])), plain[0])
    assert FiLMModule.from_config(layer.get_config()).blocks == 2


def test_flatten_pooling_knows_where_things_are():
    """Max pooling answers the same for a grid and the grid with two cells swapped;
    flattening does not."""
    x = _inputs(ModelConfig(**SMALL, image_encoder="pretrained"))
    swapped = x["image"].copy()
    swapped[:, 0, 0], swapped[:, -1, -1] = x["image"][:, -1, -1], x["image"][:, 0, 0]
    for pool, same in (("max", True), ("flatten", False)):
        config = ModelConfig(**SMALL, image_encoder="pretrained", fusion="concat", pool_grid=pool)
        model = build(config, vocab_size=10, num_answers=5)
        # The image vector, not the answers: an untrained softmax over 5 answers can
        # squash a real difference below any tolerance.
        image_vector = keras.Model(model.inputs, model.get_layer("image_vector").output)
        vectors = [
            keras.ops.convert_to_numpy(image_vector({**x, "image": image}))
            for image in (x["image"], swapped)
        ]
        difference = np.abs(vectors[0] - vectors[1]).max()
        assert (difference == 0) if same else (difference > 1e-3), (pool, difference)


@pytest.mark.parametrize(
    "variant",
    [
        dict(fusion="elementwise", attention_hops=1),
        dict(fusion="relation", fusion_options={"depth": 2}),
        dict(fusion="film", fusion_options={"blocks": 2}),
    ],
    ids=lambda v: v["fusion"],
)
def test_conditioned_cnn_round_trip(tmp_path, variant):
    config = ModelConfig(image_encoder="conditioned_cnn", **SMALL, **variant)
    model = build(config, vocab_size=10, num_answers=5)
    x = _inputs(config)
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x, training=False)), probs, rtol=1e-5, atol=1e-6
    )


def test_conditioned_cnn_is_the_plain_cnn_until_the_question_moves_it():
    config = ModelConfig(image_encoder="small_cnn", **SMALL)
    plain = SmallCNN(config).layer()
    layer = ConditionedCNN(config.cnn_filters)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (2, 32, 32, 3)).astype("float32")
    questions = [rng.normal(size=(2, 4)).astype("float32") for _ in range(2)]
    grids = [keras.ops.convert_to_numpy(layer([q, image])) for q in questions]
    assert grids[0].shape == (2, 8, 8, 8) and not np.allclose(grids[0], grids[1])
    for i, (conv, film) in enumerate(zip(layer.convs, layer.films)):
        conv.set_weights(plain.get_layer(f"conv{i}").get_weights())
        film.set_weights([np.zeros_like(w) for w in film.get_weights()])
    expected = keras.ops.convert_to_numpy(plain(image, training=False))
    for q in questions:  # gamma = 1, beta = 0: the plain CNN, whatever the question
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(layer([q, image])), expected, rtol=1e-5, atol=1e-5
        )
    film = layer.films[0]  # a shift in the first block reaches the grid
    film.set_weights([film.get_weights()[0], np.full(8, 0.5, "float32")])
    assert not np.allclose(keras.ops.convert_to_numpy(layer([questions[0], image])), expected)
    assert layer.compute_output_shape(((2, 4), (2, 32, 32, 3))) == (2, 8, 8, 8)
    assert ConditionedCNN.from_config(layer.get_config()).filters == [4, 8]


def test_mfb_fusion_is_normalised():
    layer = MFBFusion(6, factor=3)
    out = keras.ops.convert_to_numpy(
        layer([np.random.rand(4, 3).astype("float32"), np.random.rand(4, 5).astype("float32")])
    )
    assert out.shape == (4, 6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, rtol=1e-4)
    assert MFBFusion.from_config(layer.get_config()).factor == 3


def test_question_encoder_shapes():
    for kwargs, width in (
        (dict(question_encoder="gru"), 8),
        (dict(bidirectional=True, question_layers=2), 16),
    ):
        config = ModelConfig(**SMALL, **kwargs)
        encoder = encoders.question_encoder(config, 10)
        out = encoder(np.array([[3, 4, 0, 0, 0, 0]], dtype="int32"))
        assert tuple(out.shape) == (1, width)


def test_question_padding_width_does_not_change_the_answer():
    """Batches are padded only to their longest question; the encoder's mask makes the
    width irrelevant, so a model answers the same at any width."""
    for kwargs in (dict(), dict(question_encoder="gru", bidirectional=True, question_layers=2)):
        config = ModelConfig(**{**SMALL, "image_encoder": "pretrained", **kwargs})
        model = build(config, vocab_size=10, num_answers=5)
        inputs = _inputs(config)
        inputs["question"] = np.array([[3, 4, 0], [5, 6, 7], [2, 0, 0]], dtype="int32")
        wide = {**inputs, "question": np.pad(inputs["question"], ((0, 0), (0, 9)))}
        np.testing.assert_allclose(
            model.predict_on_batch(inputs), model.predict_on_batch(wide), rtol=1e-5, atol=1e-6
        )


def test_word_vectors_initialise_the_embedding(tmp_path):
    from vqa.data.text import Vocabulary, load_word_vectors
    from vqa.errors import ConfigError

    words = Vocabulary.for_questions(["what color is it"])
    glove = tmp_path / "glove.txt"
    glove.write_text("color 1 2 3 4\nunrelated 9 9 9 9\nwhat 0.5 0.5 0.5 0.5\n")
    matrix, coverage = load_word_vectors(glove, words, 4)
    assert coverage == 0.5
    np.testing.assert_array_equal(matrix[words.index["color"]], [1, 2, 3, 4])
    assert not matrix[0].any()  # padding
    config = ModelConfig(**SMALL)
    model = build(config, len(words), 3, word_vectors=matrix)
    embedding = model.get_layer("question_encoder").get_layer("word_embedding")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(embedding.embeddings), matrix)
    with pytest.raises(ConfigError, match="line 1: 4 values .* embedding_dim is 8"):
        load_word_vectors(glove, words, 8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(inputs="question", attention_hops=1), "attention_hops needs both inputs"),
        (dict(pool_grid="flatten", attention_hops=1), "pool_grid: flatten is for the fusions"),
        (dict(fusion=""), "fusion must name a registered fusion"),
        (dict(pool_grid="mean"), r"Expected one of \['max', 'flatten'\]"),
        (dict(question_layers=5), "question_layers must be"),
        (
            dict(attention_words=True, attention_hops=1, bidirectional=True),
            "a one-way question encoder",
        ),
        (dict(inputs="pixels"), "inputs"),
        (dict(attention_counts=True), "attention_counts needs attention_hops >= 1"),
        (dict(attention_word_embeddings=True, attention_hops=2), "needs attention_words: true"),
        (
            dict(attention_relative=True, attention_hops=1),
            "attention_relative needs attention_hops >= 2",
        ),
    ],
)
def test_invalid_model_configs(kwargs, match):
    from vqa.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        ModelConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(fusion="relation", attention_hops=1), "attention_hops needs a fusion of vectors"),
        (dict(fusion="relation", inputs="image"), "relation needs both inputs"),
        (dict(fusion="film", attention_hops=2), "attention_hops needs a fusion of vectors"),
        (dict(fusion="film", inputs="question"), "film needs both inputs"),
        (
            dict(fusion="film", fusion_options={"blocks": 0}),
            "film: units and blocks must be positive",
        ),
        (
            dict(fusion="mfb", fusion_options={"rank": 2}),
            r"Unknown option\(s\) \['rank'\] of fusion mfb \(in the fusion section\). Its "
            r"options, with their defaults: \{'factor': 5\}",
        ),
        (dict(fusion="mfb", fusion_options={"factor": 2.5}), "must be of the kind of its default"),
        (dict(pool_grid="flatten", fusion="relation"), "pool_grid: flatten is for the fusions"),
        (dict(attention_words=True), "attention_words needs attention_hops >= 1"),
        (dict(fusion="film", attention_words=True), "fusion film does not read the words"),
        (dict(fusion="sum"), r"Unknown fusion 'sum'. Expected one of \['concat', "),
    ],
)
def test_fusion_checks_come_from_the_registry(kwargs, match):
    from vqa.errors import ConfigError

    config = ModelConfig(**{**SMALL, "image_encoder": "small_cnn", **kwargs})
    with pytest.raises(ConfigError, match=match):
        fusions.check_fusion(config)
    with pytest.raises(ConfigError, match=match):  # the builder checks first
        build(config, vocab_size=10, num_answers=5)


def test_options_of_0_1_0_configs_move_into_fusion_options():
    from vqa.config import Config

    old = {"fusion": "relation", "relation_layers": 2, "mfb_factor": 5, "film_blocks": 4}
    assert Config.from_dict({"model": old}).model.fusion_options == (("depth", 2),)
    old = {"fusion": "mfb", "mfb_factor": 5, "relation_layers": 3}  # defaults: left out
    assert Config.from_dict({"model": old}).model.fusion_options == ()
    assert fusions.fusion_options(MFBFusion) == {"factor": 5}
    from vqa.errors import ConfigError

    with pytest.raises(ConfigError, match="relation_layers: 2 and fusion_options.depth: 4"):
        Config.from_dict(
            {"model": {"fusion": "relation", "relation_layers": 2, "fusion_options": {"depth": 4}}}
        )


def test_fusion_options_are_immutable_and_written_without_defaults():
    from vqa.config import Config

    config = ModelConfig(fusion="mfb", fusion_options={"factor": 5})
    assert hash(config) == hash(ModelConfig(fusion="mfb", fusion_options={"factor": 5}))
    assert Config(config).to_dict()["fusion"] == {
        "inputs": "both",
        "fusion": "mfb",
        "fusion_dim": 256,
        "factor": 5,
    }
    assert fusions.canonical_options(config) == ()  # the default, as if not written
    assert fusions.canonical_options(ModelConfig(fusion="mfb", fusion_options={"factor": 3})) == (
        ("factor", 3),
    )


def test_the_conditioned_flag_of_earlier_configs_loads_as_its_encoder(tmp_path):
    from vqa.config import load_config
    from vqa.errors import ConfigError

    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text("image:\n  image_encoder: small_cnn\n  conditioned_cnn: true\n")
    new.write_text("image:\n  image_encoder: conditioned_cnn\n")
    assert load_config(old) == load_config(new)
    assert load_config(old).model.image_encoder == "conditioned_cnn"
    old.write_text("model:\n  image_encoder: small_cnn\n  conditioned_cnn: false\n")  # 0.1.0
    assert load_config(old).model.image_encoder == "small_cnn"
    old.write_text("image:\n  conditioned_cnn: true\n")  # on the pretrained grid: never was
    with pytest.raises(ConfigError, match="conditioned_cnn needs image_encoder: small_cnn"):
        load_config(old)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(image_encoder="conditioned_cnn", inputs="image"), "needs both inputs"),
        (dict(image_encoder="small_cnn", image_size=50), "divisible by 2\\*\\*len"),
        (dict(image_encoder="conditioned_cnn", image_size=36), "divisible"),
        (dict(image_encoder="small_cnm"), "Unknown image encoder 'small_cnm'.*'small_cnn'"),
    ],
)
def test_the_image_encoder_checks_the_config_when_a_run_starts(tmp_path, kwargs, match):
    from vqa.config import Config
    from vqa.errors import ConfigError
    from vqa.training import train

    config = ModelConfig(**kwargs)  # the image section alone is not wrong
    with pytest.raises(ConfigError, match=match):
        train(tmp_path / "no-such-data", tmp_path / "run", Config(config), verbose=0)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=match):
        build_model(config, 10, 3)


def test_a_captioner_refuses_an_image_encoder_that_reads_the_question(tmp_path):
    from vqa.config import Config
    from vqa.errors import ConfigError
    from vqa.models.builder import build_captioner
    from vqa.training import train

    config = ModelConfig(image_encoder="conditioned_cnn", decoder="attention")
    match = "conditioned_cnn reads a question; a captioner has none"
    with pytest.raises(ConfigError, match=match):  # when the run starts, before the data
        train(None, tmp_path / "run", Config(config), verbose=0)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=match):
        build_captioner(config, 10)
