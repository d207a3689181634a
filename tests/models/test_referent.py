"""The referent fusion finds the object a question names and relates the others to it."""

import keras
import numpy as np
import pytest

from vqa.models.fusions import ReferentRelation


def _scenes(n, rng, side=4):
    """n grids of side x side cells: three objects (one-hot colour in channels 0-2, a
    shape bit in channel 3) in distinct cells; questions name a colour (one-hot)."""
    grids = np.zeros((n, side * side, 4), "float32")
    cells = np.argsort(rng.random((n, side * side)), axis=1)[:, :3]  # [n, 3] colour k's cell
    shapes = rng.integers(0, 2, (n, 3))
    rows = np.arange(n)[:, None]
    grids[rows, cells, np.arange(3)] = 1.0
    grids[rows, cells, 3] = shapes
    asked = rng.integers(0, 3, n)
    xy = np.stack(np.divmod(cells, side), -1)  # [n, 3, 2]
    distance = ((xy - xy[np.arange(n), asked][:, None]) ** 2).sum(-1)
    distance[np.arange(n), asked] = 10**6
    closest = distance.argmin(1)
    questions = np.eye(3, dtype="float32")[asked]
    return (
        grids.reshape(n, side, side, 4),
        questions,
        shapes[np.arange(n), asked],
        shapes[np.arange(n), closest],
    )


def _fit(answers_of, rng, epochs):
    grids, questions, shape, closest = _scenes(3000, rng)
    answers = {"shape": shape, "closest": closest}[answers_of]
    question = keras.Input((3,))
    grid = keras.Input((4, 4, 4))
    fused = ReferentRelation(32, blocks=0)([question, grid])
    model = keras.Model([question, grid], keras.layers.Dense(2, activation="softmax")(fused))
    model.compile(
        keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(
        [questions[:2500], grids[:2500]], answers[:2500], batch_size=64, epochs=epochs, verbose=0
    )
    return model.evaluate([questions[2500:], grids[2500:]], answers[2500:], verbose=0)[1]


def test_it_answers_about_the_named_object_and_the_one_closest_to_it():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    assert _fit("shape", rng, epochs=8) > 0.95  # chance: 0.5
    # Chance is about 0.75 here: the two others share their shape half the time.
    assert _fit("closest", rng, epochs=25) > 0.85


def test_two_referents_compare_the_two_objects_a_question_names():
    """'Does the red object have the same shape as the green one?': the question names
    two of the three colours; each referent's attention finds one of them."""
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    grids, _, _, _ = _scenes(3000, rng)
    first = rng.integers(0, 3, 3000)
    second = (first + rng.integers(1, 3, 3000)) % 3
    cells = grids.reshape(3000, -1, 4)
    shapes = np.einsum("nck,nc->nk", cells[:, :, :3], cells[:, :, 3])  # [n, 3] colour k's
    same = (shapes[np.arange(3000), first] == shapes[np.arange(3000), second]).astype(int)
    questions = np.concatenate([np.eye(3)[first], np.eye(3)[second]], 1).astype("float32")
    question = keras.Input((6,))
    grid = keras.Input((4, 4, 4))
    fused = ReferentRelation(32, blocks=0, referents=2)([question, grid])
    model = keras.Model([question, grid], keras.layers.Dense(2, activation="softmax")(fused))
    model.compile(
        keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit([questions[:2500], grids[:2500]], same[:2500], batch_size=64, epochs=20, verbose=0)
    accuracy = model.evaluate([questions[2500:], grids[2500:]], same[2500:], verbose=0)[1]
    assert accuracy > 0.9  # chance: 0.5
    assert model.layers[-2].get_config()["referents"] == 2


@pytest.mark.parametrize("find", ["question", "words", "relate"])
def test_the_explaining_model_gives_each_referents_map_and_the_same_answers(tmp_path, find):
    """Each referent's map, and with relate_pick the pick's after them."""
    from conftest import SMALL_MODEL

    from vqa.config import ModelConfig
    from vqa.models import build_model
    from vqa.models.builder import attention_model, model_inputs

    words = find != "question"
    options = {"blocks": 1, "channels": 4, "referents": 2, "composed_find": words}
    if find == "relate":
        options.update(descriptive_words=True, ordered_descriptions=True, relate_pick=True)
    config = ModelConfig(
        **SMALL_MODEL,
        image_encoder="small_cnn",
        fusion="referent",
        fusion_options=options,
        attention_words=words,  # the word states come masked
        attention_word_embeddings=words,
    )
    model = build_model(config, vocab_size=10, num_answers=5)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", compile=False, safe_mode=True)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 32, 32, 3)).astype("float32")
    tokens = rng.integers(1, 10, (3, config.max_question_length)).astype("int32")
    for m in (model, loaded):
        explained, grid = attention_model(m)
        assert grid == (4, 4)  # the small CNN's 8x8 grid, after one strided block
        inputs = model_inputs(m, pixels, tokens)
        answers, weights = explained.predict_on_batch(inputs)
        np.testing.assert_allclose(answers, m.predict_on_batch(inputs), rtol=1e-5, atol=1e-6)
        assert weights.shape == (3, 2 + (find == "relate"), 16)
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)


def test_composed_find_maps_each_description_from_its_words_whatever_the_question_around_it():
    """A word's map comes from its embedding alone and its state only says whose
    description it is in: "the red circle" finds the same cells whatever other words
    (placed in no description) the question holds."""
    rng = np.random.default_rng(6)
    grids = rng.random((2, 3, 3, 4)).astype("float32")
    question = rng.random((2, 5)).astype("float32")
    role = np.eye(3, dtype="float32") * 30  # a state's role: referent 0, referent 1, none
    red, circle, other, filler = rng.normal(size=(4, 5)).astype("float32")

    def words(*pairs):  # (role, embedding) per word -> [2, L, 5 + 5]: states, embeddings
        # A state: its role, then two numbers of context (the words before it).
        row = np.stack([np.concatenate([role[r], rng.normal(size=2), e]) for r, e in pairs])
        return np.stack([row, row]).astype("float32"), np.array([[4] * len(pairs)] * 2)

    a = words((2, filler), (0, red), (1, circle))  # "what colour is the red circle?"
    b = words((0, red), (2, other), (2, filler), (1, circle))  # "the red ... as the circle?"
    layer = ReferentRelation(8, blocks=0, referents=2, composed_find=True)
    layer([question, grids, *a])
    kernel, bias = layer.word_slot.get_weights()
    assert kernel.shape == (5, 3)  # referents and "none", from the state alone
    layer.word_slot.set_weights([np.eye(5, 3, dtype="float32"), np.zeros_like(bias)])
    maps = [keras.ops.convert_to_numpy(layer.where_it_looks([question, grids, *w])) for w in (a, b)]
    np.testing.assert_allclose(maps[0], maps[1], rtol=1e-4)
    assert not np.allclose(maps[0][:, 0], maps[0][:, 1])  # red and circle: two maps
    padded = words((0, red), (1, circle), (2, other))
    padded[1][:, 2] = 0  # padding: left out whatever its state says
    padded[0][:, 2, :3] = role[0]
    looks = keras.ops.convert_to_numpy(layer.where_it_looks([question, grids, *padded]))
    np.testing.assert_allclose(looks, maps[0], rtol=1e-4)
    assert keras.ops.convert_to_numpy(layer([question, grids, *a])).shape == (2, 8)
    assert ReferentRelation.from_config(layer.get_config()).composed_find is True
    with pytest.raises(ValueError, match="composed_find: true needs attention_words"):
        ReferentRelation(8, blocks=0, referents=2, composed_find=True)([question, grids])
    with pytest.raises(ValueError, match="the referent fusion reads the words for nothing else"):
        ReferentRelation(8, blocks=0, referents=2)([question, grids, *a])  # words, unread


def test_descriptive_words_come_from_the_embedding_and_their_description_from_the_state():
    rng = np.random.default_rng(7)
    grids = rng.random((2, 3, 3, 4)).astype("float32")
    question = rng.random((2, 5)).astype("float32")
    role = np.eye(2, 5, dtype="float32") * 30  # a state's referent, 0 or 1
    red, circle, other, filler = rng.normal(size=(4, 5)).astype("float32")
    red[4] = circle[4] = 30.0  # the embedding's own say: describes
    other[4] = filler[4] = -30.0  # does not

    def words(*pairs):  # (referent, embedding) per word -> [2, L, 5 + 5]
        row = np.stack([np.concatenate([role[r], e]) for r, e in pairs])
        return np.stack([row, row]), np.array([[4] * len(pairs)] * 2)

    layer = ReferentRelation(8, blocks=0, referents=2, composed_find=True, descriptive_words=True)
    a = words((0, red), (1, circle))
    layer([question, grids, *a])
    assert layer.word_slot.get_weights()[0].shape == (5, 2)  # no "none" slot: d_w says it
    layer.word_slot.set_weights([np.eye(5, 2, dtype="float32"), np.zeros(2, "float32")])
    layer.word_describes.set_weights([np.eye(5, 1, k=-4, dtype="float32"), np.zeros(1, "float32")])
    # Words that do not describe change nothing, whichever description their state names.
    b = words((1, filler), (0, red), (0, other), (1, circle), (0, filler))
    maps = [keras.ops.convert_to_numpy(layer.where_it_looks([question, grids, *w])) for w in (a, b)]
    np.testing.assert_allclose(maps[0], maps[1], rtol=1e-4)
    swapped = words((1, red), (0, circle))  # the states say whose: the maps swap
    looks = keras.ops.convert_to_numpy(layer.where_it_looks([question, grids, *swapped]))
    np.testing.assert_allclose(looks[:, ::-1], maps[0], rtol=1e-4)
    assert ReferentRelation.from_config(layer.get_config()).descriptive_words is True
    with pytest.raises(ValueError, match="descriptive_words needs composed_find"):
        ReferentRelation(8, referents=2, descriptive_words=True)


def test_ordered_descriptions_give_the_first_run_of_describing_words_to_the_first_referent():
    rng = np.random.default_rng(8)
    grids = rng.random((2, 3, 3, 4)).astype("float32")
    question = rng.random((2, 5)).astype("float32")
    red, circle, square, other = rng.normal(size=(4, 5)).astype("float32")
    red[4] = circle[4] = square[4] = 30.0  # the embedding's say: describes
    other[4] = -30.0  # does not

    def words(*embeddings):  # any state: the order alone says whose description
        row = np.stack([np.concatenate([rng.normal(size=5), e]) for e in embeddings])
        return np.stack([row, row]).astype("float32"), np.array([[4] * len(embeddings)] * 2)

    layer = ReferentRelation(
        8, blocks=0, referents=2, composed_find=True, descriptive_words=True,
        ordered_descriptions=True,
    )  # fmt: skip
    a = words(red, circle, other, square)  # "the red circle ... the square"
    layer([question, grids, *a])
    assert not hasattr(layer, "word_slot")
    layer.word_describes.set_weights([np.eye(5, 1, k=-4, dtype="float32"), np.zeros(1, "float32")])

    def looks(w):
        return keras.ops.convert_to_numpy(layer.where_it_looks([question, grids, *w]))

    maps = looks(a)
    assert not np.allclose(maps[:, 0], maps[:, 1])
    around = words(other, red, circle, other, other, square)  # other words change nothing
    np.testing.assert_allclose(looks(around), maps, rtol=1e-4)
    np.testing.assert_allclose(looks(words(square, other, red, circle))[:, ::-1], maps, rtol=1e-4)
    # The last referent takes every later run; padding is no word.
    np.testing.assert_allclose(
        looks(words(red, other, circle, other, square)), looks(words(red, other, circle, square)),
        rtol=1e-4,
    )  # fmt: skip
    padded = words(red, circle, square, other, square)
    padded[1][:, 2] = 0
    np.testing.assert_allclose(looks(padded), maps, rtol=1e-4)
    assert ReferentRelation.from_config(layer.get_config()).ordered_descriptions is True
    with pytest.raises(ValueError, match="ordered_descriptions needs descriptive_words"):
        ReferentRelation(8, referents=2, composed_find=True, ordered_descriptions=True)


def test_describe_penalty_is_a_training_loss_on_how_much_the_words_describe():
    rng = np.random.default_rng(9)
    grids = rng.random((2, 3, 3, 4)).astype("float32")
    question = rng.random((2, 5)).astype("float32")
    words = rng.normal(size=(2, 4, 10)).astype("float32")
    ids = np.array([[4, 4, 4, 4], [4, 4, 0, 0]])  # the second question: two words
    layer = ReferentRelation(
        8, blocks=0, referents=2, composed_find=True, descriptive_words=True,
        ordered_descriptions=True, describe_penalty=0.5,
    )  # fmt: skip
    layer([question, grids, words, ids])
    kernel = np.zeros((5, 1), "float32")
    kernel[0] = 1.0  # d_w = sigmoid(the embedding's first number)
    layer.word_describes.set_weights([kernel, np.zeros(1, "float32")])
    layer([question, grids, words, ids])
    (loss,) = layer.losses
    d = 1 / (1 + np.exp(-words[..., 5]))
    expected = 0.5 * np.mean([d[0].mean(), d[1, :2].mean()])  # padding is no word
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert ReferentRelation.from_config(layer.get_config()).describe_penalty == 0.5
    with pytest.raises(ValueError, match="needs descriptive_words"):
        ReferentRelation(8, referents=2, composed_find=True, describe_penalty=0.1)


def test_describe_penalty_from_starts_the_loss_after_that_many_training_batches():
    rng = np.random.default_rng(10)
    grids = rng.random((2, 3, 3, 4)).astype("float32")
    inputs = [rng.random((2, 5)).astype("float32"), grids]
    inputs += [rng.normal(size=(2, 3, 10)).astype("float32"), np.array([[4, 4, 4]] * 2)]
    layer = ReferentRelation(
        8, blocks=0, referents=2, composed_find=True, descriptive_words=True,
        describe_penalty=0.5, describe_penalty_from=2,
    )  # fmt: skip
    seen = []
    for training in (True, False, True, True):  # inference does not count
        layer(inputs, training=training)
        seen.append(float(layer.losses[0]))
    assert seen[:3] == [0.0, 0.0, 0.0] and 0.0 < seen[3] <= 0.5
    assert ReferentRelation.from_config(layer.get_config()).describe_penalty_from == 2
    with pytest.raises(ValueError, match="describe_penalty_from must be 0 or more"):
        ReferentRelation(8, describe_penalty_from=-1)


def test_relate_pick_picks_the_first_descriptions_cells_in_the_asked_relation_to_the_second():
    """ "The X left of the Y": on a 3x3 grid, X fits the four corners, Y the centre; a
    relation that weighs -dx picks the left corners, one that weighs -d^2 the nearest,
    and never the anchor itself."""
    rng = np.random.default_rng(11)
    grids = rng.random((1, 3, 3, 4)).astype("float32")
    question = rng.random((1, 5)).astype("float32")
    words = rng.normal(size=(1, 2, 10)).astype("float32")
    layer = ReferentRelation(
        8, blocks=0, referents=2, composed_find=True, descriptive_words=True,
        ordered_descriptions=True, relate_pick=True,
    )  # fmt: skip
    assert layer([question, grids, words, np.array([[4, 4]])]).shape == (1, 8)
    assert layer.f.kernel.shape[0] == 4 * 8 + 3  # and the pick's soft count
    corners = np.log(np.where(np.isin(np.arange(9), [0, 2, 6, 8]), 1.0, 1e-4))
    centre = np.log(np.where(np.arange(9) == 4, 1.0, 1e-4))
    xy = np.stack(np.meshgrid([-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]), -1).reshape(1, 9, 2)
    geometry = np.concatenate([xy, (xy**2).sum(-1, keepdims=True)], -1).astype("float32")
    evidence = [corners[None].astype("float32"), centre[None].astype("float32")]

    def related(a):  # the relation layer's output set to (a, b = 0) whatever the question
        layer.relation.set_weights([np.zeros((5, 4), "float32"), np.array([*a, 0], "float32")])
        r = layer._related(question, evidence, geometry, None, None, grids.shape)
        return keras.ops.convert_to_numpy(r)[0]

    left = np.exp(related((-10.0, 0.0, 0.0)))
    assert left[[0, 6]].min() > 0.99 and left[[2, 8]].max() < 1e-3  # x = -1 against x = 1
    assert left[[1, 3, 4, 5, 7]].max() < 1e-3  # not X, or the anchor
    near = related((0.0, 0.0, -1.0))  # every corner at d^2 = 2 cells: all alike
    np.testing.assert_allclose(near[[0, 2, 6, 8]], near[0], rtol=1e-5)
    everywhere = related((0.0, 0.0, 0.0))  # no relation asked: X's cells, less the anchor
    assert everywhere[4] < everywhere[0] - 4
    assert ReferentRelation.from_config(layer.get_config()).relate_pick is True
    with pytest.raises(ValueError, match="relate_pick needs composed_find: true and referents: 2"):
        ReferentRelation(8, referents=2, relate_pick=True)


def test_relate_pick_trains_the_descriptions_maps_and_its_relation():
    """The pick's gradient reaches the two maps as well as the relation a(q), b(q): with
    it stopped at the maps, every family learnt slower (referent2-relate/stopped-maps)."""
    import tensorflow as tf

    rng = np.random.default_rng(12)
    grids = rng.random((2, 3, 3, 4)).astype("float32")
    question = tf.constant(rng.random((2, 5)).astype("float32"))
    layer = ReferentRelation(8, blocks=0, referents=2, composed_find=True, relate_pick=True)
    layer([question, grids, rng.normal(size=(2, 2, 10)).astype("float32"), np.ones((2, 2))])
    evidence = [tf.constant(np.log(rng.uniform(0.1, 0.9, (2, 9))).astype("float32")) for _ in "xy"]
    geometry = tf.constant(rng.normal(size=(2, 9, 3)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(evidence)
        related = layer._related(question, evidence, geometry, None, None, grids.shape)
        related = tf.reduce_sum(related**2)
    assert all(np.abs(g.numpy()).sum() > 0 for g in tape.gradient(related, evidence))
    assert np.abs(tape.gradient(related, layer.relation.kernel).numpy()).sum() > 0


def test_relate_cells_relates_each_cell_to_every_cell_of_the_anchors_map():
    """On a 3x3 grid: with the anchor's map on one cell, the cell-to-cell relation is
    the relation to its position; with the map split between two cells, a cell is
    related to each (and weighted by its share), not to their mean position; and every
    cell of that map gets its own gradient."""
    import tensorflow as tf

    rng = np.random.default_rng(14)
    grids = rng.random((1, 3, 3, 4)).astype("float32")
    question = rng.random((1, 5)).astype("float32")
    options = dict(blocks=0, referents=2, composed_find=True, relate_pick=True)
    layer = ReferentRelation(8, relate_cells=True, **options)
    layer([question, grids, rng.normal(size=(1, 2, 10)).astype("float32"), np.ones((1, 2))])
    layer.relation.set_weights([np.zeros((5, 4), "float32"), np.array([-3, 0, 0, -1], "float32")])
    xy = np.stack(np.meshgrid([-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]), -1).reshape(1, 9, 2)
    xy = xy.astype("float32")
    fits = np.log(rng.uniform(0.2, 0.9, (1, 9))).astype("float32")
    evidence = [fits, np.full((1, 9), -9.0, "float32")]  # the anchor's fit itself: ~0

    def related(anchor, geometry=None):
        r = layer._related(question, evidence, geometry, anchor, xy, grids.shape)
        return keras.ops.convert_to_numpy(r)[0]

    centre = np.eye(9, dtype="float32")[[4]]
    offset = xy - xy[:, 4:5]
    geometry = np.concatenate([offset, (offset**2).sum(-1, keepdims=True)], -1)
    centroid = ReferentRelation(8, **options)
    centroid([question, grids, rng.normal(size=(1, 2, 10)).astype("float32"), np.ones((1, 2))])
    centroid.relation.set_weights(layer.relation.get_weights())
    by_centroid = centroid._related(question, evidence, geometry, None, None, grids.shape)
    np.testing.assert_allclose(
        np.exp(related(centre)), np.exp(keras.ops.convert_to_numpy(by_centroid)[0]), atol=1e-5
    )
    split = np.zeros((1, 9), "float32")
    split[0, [3, 5]] = 0.5  # left-middle and right-middle: their mean is the centre
    left_of = 1 / (1 + np.exp(-(-3 * (xy[0, :, None, 0] - xy[0, None, :, 0]) - 1)))  # [i, j]
    expected = fits[0] + np.log(left_of @ split[0] + 1e-6) + np.log(1 - 0.99 * np.exp(-9.0))
    np.testing.assert_allclose(related(split), expected, rtol=1e-4)
    assert related(split)[1] > related(centre)[1] + 0.3  # top-middle: left of right-middle
    anchor = tf.constant(split)
    with tf.GradientTape() as tape:
        tape.watch(anchor)
        total = tf.reduce_sum(layer._related(question, evidence, None, anchor, xy, grids.shape))
    assert (np.abs(tape.gradient(total, anchor).numpy()) > 0).all()
    assert ReferentRelation.from_config(layer.get_config()).relate_cells is True
    with pytest.raises(ValueError, match="relate_cells needs relate_pick: true"):
        ReferentRelation(8, relate_cells=True)


def test_relate_refines_makes_the_first_referent_its_cells_in_the_asked_relation():
    """With relate_refines the first map is the relation's softmax; the relation's b(q)
    set very high asks no relation, and the map is the description's own, less the
    anchor."""
    rng = np.random.default_rng(15)
    options = dict(blocks=0, referents=2, composed_find=True, relate_pick=True, relate_cells=True)
    inputs = [rng.random((2, 5)).astype("float32"), rng.random((2, 3, 3, 4)).astype("float32")]
    inputs += [rng.normal(size=(2, 3, 10)).astype("float32"), np.ones((2, 3), "int32")]
    plain, refined = (
        ReferentRelation(8, **options),
        ReferentRelation(8, relate_refines=True, **options),
    )
    plain(inputs)
    refined(inputs)
    refined.set_weights(plain.get_weights())

    def maps(layer, a):
        layer.relation.set_weights([np.zeros((5, 4), "float32"), np.array(a, "float32")])
        return keras.ops.convert_to_numpy(layer.where_it_looks(inputs))  # [2, 3, 9]

    left, described = maps(refined, [-6, 0, 0, 0]), maps(plain, [-6, 0, 0, 0])
    xy = np.stack(np.meshgrid([-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]), -1).reshape(9, 2)
    assert (left[:, 0] @ xy[:, 0] < described[:, 0] @ xy[:, 0] - 0.1).all()  # moved left
    np.testing.assert_allclose(left[:, 1], described[:, 1], atol=1e-6)  # the anchor's alone
    cells = refined._cells(inputs[0], inputs[1], training=False)[0]
    anchor = np.exp(
        keras.ops.convert_to_numpy(
            refined._described(inputs, refined._find_keys(inputs, cells, False))[1]
        )
    )
    less_anchor = described[:, 0] * (1 - 0.99 * anchor)  # no relation: less the anchor alone
    np.testing.assert_allclose(
        maps(refined, [0, 0, 0, 30])[:, 0],
        less_anchor / less_anchor.sum(-1, keepdims=True),
        atol=1e-5,
    )
    assert ReferentRelation.from_config(refined.get_config()).relate_refines is True
    with pytest.raises(ValueError, match="relate_refines needs relate_cells: true"):
        ReferentRelation(8, relate_refines=True, **{**options, "relate_cells": False})


@pytest.mark.parametrize("describes", [None, 30.0, -30.0])
def test_relation_words_reads_the_relation_from_the_words_that_do_not_describe(describes):
    """With relation_words, a(q), b(q) see the embeddings of the words that do not
    describe ("left", "of"): "left" and "right" differ there even where the question's
    last state barely does. With descriptive_words, a word that describes (d_w = 1)
    adds nothing to it; without, every word counts."""
    rng = np.random.default_rng(16)
    options = dict(blocks=0, referents=2, composed_find=True, relate_pick=True)
    options.update(descriptive_words=describes is not None)
    layer = ReferentRelation(8, relation_words=True, **options)
    question = np.repeat(rng.random((1, 5)), 2, axis=0).astype("float32")  # one state
    words = np.repeat(rng.normal(size=(1, 3, 10)), 2, axis=0).astype("float32")
    words[1, 1, 5:] += 1.0  # question 2's second word has another embedding
    ids = np.array([[4, 5, 6], [4, 7, 6]])
    inputs = [question, rng.random((1, 3, 3, 4)).repeat(2, 0).astype("float32"), words, ids]
    layer(inputs)
    assert layer.relation.kernel.shape[0] == 5 + 5  # q, then the words' embeddings
    for reads in (layer.word_match, layer.word_shift):  # the maps: alike for every word
        reads.set_weights([np.zeros_like(w) for w in reads.get_weights()])
    if describes is not None:  # d_w the same for every word: 1 or 0
        layer.word_describes.set_weights([np.zeros((5, 1), "float32"), np.array([describes])])

    def picks(from_words):
        kernel = rng.normal(size=(10, 4)).astype("float32")
        kernel[5:] *= from_words
        layer.relation.set_weights([kernel, np.zeros(4, "float32")])
        return keras.ops.convert_to_numpy(layer.where_it_looks(inputs))[:, -1]

    differ = np.abs(np.diff(picks(1.0), axis=0)).max()
    assert (differ > 1e-3) == (describes != 30.0), differ
    np.testing.assert_allclose(*picks(0.0), atol=1e-6)  # the state alone: the same pick
    assert ReferentRelation.from_config(layer.get_config()).relation_words is True
    with pytest.raises(ValueError, match="relation_words needs relate_pick: true"):
        ReferentRelation(8, relation_words=True)


@pytest.mark.parametrize("sees", [True, False])
def test_find_sees_question_false_finds_from_blocks_the_question_does_not_modulate(sees):
    """Two questions with the same words and different states: the find's maps differ
    through the FiLM-ed blocks, and not when the find has blocks of its own."""
    rng = np.random.default_rng(17)
    layer = ReferentRelation(8, blocks=2, channels=4, composed_find=True, find_sees_question=sees)
    question = rng.normal(size=(2, 5)).astype("float32")
    grid = rng.random((1, 8, 8, 3)).repeat(2, 0).astype("float32")
    words = rng.normal(size=(1, 3, 10)).repeat(2, 0).astype("float32")
    inputs = [question, grid, words, np.ones((2, 3), "int32")]
    layer(inputs)
    assert len(layer.key_convs) == (0 if sees else 2)
    found = keras.ops.convert_to_numpy(layer.where_it_looks(inputs))[:, 0]  # [2, 16]
    assert (np.abs(found[0] - found[1]).max() < 1e-6) == (not sees)
    assert ReferentRelation.from_config(layer.get_config()).find_sees_question is sees


@pytest.mark.parametrize("composed", [True, False])
def test_the_finds_own_blocks_train_their_batch_norm_in_training(composed):
    rng = np.random.default_rng(18)
    layer = ReferentRelation(8, channels=4, composed_find=composed, find_sees_question=False)
    inputs = [rng.normal(size=(2, 5)).astype("float32"), rng.random((2, 4, 4, 3)).astype("float32")]
    if composed:
        inputs += [rng.normal(size=(2, 3, 10)).astype("float32"), np.ones((2, 3), "int32")]
    layer(inputs, training=False)
    assert not np.asarray(layer.key_norms[0].moving_mean).any()
    layer(inputs, training=True)
    assert np.asarray(layer.key_norms[0].moving_mean).any()


@pytest.mark.parametrize("sees", [True, False])
def test_find_sees_position_false_maps_the_words_from_what_the_cells_look_like(sees):
    """On a grid whose cells all look alike, a find blind to position has no cell to
    prefer (a uniform map); one that sees (x, y) does prefer some."""
    rng = np.random.default_rng(13)
    grid = np.broadcast_to(rng.random((1, 1, 1, 4)), (2, 3, 3, 4)).astype("float32")
    layer = ReferentRelation(
        8, blocks=0, composed_find=True, descriptive_words=True, ordered_descriptions=True,
        find_sees_position=sees,
    )  # fmt: skip
    inputs = [rng.random((2, 5)).astype("float32"), grid]
    inputs += [rng.normal(size=(2, 3, 10)).astype("float32"), np.ones((2, 3), "int32")]
    layer(inputs)
    layer.find_cell.set_weights([w + 1.0 for w in layer.find_cell.get_weights()])  # (x, y) count
    found = keras.ops.convert_to_numpy(layer.where_it_looks(inputs))[:, 0]  # [2, 9]
    assert (np.ptp(found, axis=-1).max() < 1e-6) == (not sees)
    assert ReferentRelation.from_config(layer.get_config()).find_sees_position is sees
    with pytest.raises(ValueError, match="find_sees_position needs composed_find: true"):
        ReferentRelation(8, find_sees_position=False)


def test_a_model_saved_with_the_removed_options_off_loads_and_with_one_on_is_refused():
    saved = {**ReferentRelation(8).get_config(), "overlap": 0.0, "shared_find": False}
    assert ReferentRelation.from_config(saved).units == 8
    with pytest.raises(ValueError, match="saved with the referent fusion's overlap=1.0"):
        ReferentRelation.from_config({**saved, "overlap": 1.0})
