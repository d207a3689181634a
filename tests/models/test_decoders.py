"""Teacher forcing (one symbolic loop over the caption) computes what decoding computes
one word at a time, for every registered decoder."""

import keras
import numpy as np
import pytest

from vqa.models.decoders import DECODERS, get_decoder


@pytest.mark.parametrize("name", [n for n in DECODERS if not n.startswith("test_")])
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "graph"])
def test_teacher_forcing_gives_what_step_by_step_decoding_gives(name, compiled):
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    cells = rng.normal(size=(3, 4, 6)).astype("float32")
    tokens = rng.integers(1, 9, (3, 5)).astype("int32")
    tokens[0, 3:] = 0  # a shorter caption, padded
    options = {} if name != "hard" else {"penalty": 0.0}
    decoder = get_decoder(name)(9, layers=2, units=8, word_dim=4, attention_dim=8, **options)
    if compiled:
        c, t = keras.Input((4, 6)), keras.Input((5,), dtype="int32")
        model = keras.Model([c, t], decoder([c, t]))
        probs, alphas = model.predict([cells, tokens], verbose=0)
    else:
        probs, alphas = (keras.ops.convert_to_numpy(x) for x in decoder([cells, tokens]))
    keys, states = decoder.start(cells)
    for t in range(tokens.shape[1]):
        logits, alpha, states = decoder.step(cells, keys, tokens[:, t], states)
        expected = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
        np.testing.assert_allclose(probs[:, t], expected, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(alphas[:, t], keras.ops.convert_to_numpy(alpha), atol=1e-6)
    assert probs.shape == (3, 5, 9) and alphas.shape == (3, 5, 4)
