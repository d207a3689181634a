"""The recurrent units, registered by name: what `question_encoder` and `decoder_cell`
name in a config. The question encoder stacks the unit's sequence layer; the caption
decoder steps its cell one word at a time. A new unit is one class:

    @register_recurrent("mine")
    class Mine(Recurrent):
        layer = MyRNNLayer  # [batch, L, d] -> [batch, (L,) units], Keras' RNN arguments
        cell = MyCell       # one step: Keras' RNN cell interface
        states = 1          # state vectors the cell carries, its output first
"""

from __future__ import annotations

import keras

from vqa.registry import Registry

RECURRENT = Registry("recurrent unit", "vqa.models.recurrent.register_recurrent")


class Recurrent:
    """A kind of recurrent unit: `layer` reads a whole sequence, `cell` one step and
    carries `states` vectors, the first of them its output (LSTM: h and c)."""

    layer: type
    cell: type
    states: int = 1


def register_recurrent(name: str):
    """Class decorator: make the unit available as `question_encoder: name` and
    `decoder_cell: name`."""
    return RECURRENT.decorator(name, Recurrent)


def get_recurrent(name: str) -> type[Recurrent]:
    """The unit registered as `name`; an unknown name is a one-line ConfigError."""
    return RECURRENT.named(name)


@register_recurrent("lstm")
class LSTM(Recurrent):
    """Long short-term memory (Hochreiter and Schmidhuber 1997): gates and an additive
    cell state."""

    layer, cell, states = keras.layers.LSTM, keras.layers.LSTMCell, 2


@register_recurrent("gru")
class GRU(Recurrent):
    """Gated recurrent unit (Cho et al. 2014): update and reset gates, no cell state."""

    layer, cell = keras.layers.GRU, keras.layers.GRUCell


@register_recurrent("rnn")
class SimpleRNN(Recurrent):
    """The vanilla RNN, h' = tanh(W x + U h + b): no gates, so its gradient through time
    is multiplied by U (and tanh's slope) at every step and explodes or vanishes; the
    baseline LSTM and GRU are measured against."""

    layer, cell = keras.layers.SimpleRNN, keras.layers.SimpleRNNCell


@keras.saving.register_keras_serializable(package="vqa")
class ChronoBias(keras.initializers.RandomUniform):
    """An LSTM's biases by chrono initialisation (Tallec and Ollivier 2018): the forget
    gate's log(u), u ~ U[1, max_steps - 1], the input gate's its negative, the others 0.
    A unit then forgets at rates spread over 1 to max_steps - 1 steps, where Keras'
    forget-gate bias of 1 remembers for about 3."""

    def __init__(self, max_steps: int = 40, seed=None):
        super().__init__(minval=1.0, maxval=max_steps - 1.0, seed=seed)
        self.max_steps = max_steps

    def __call__(self, shape, dtype=None):
        units = shape[0] // 4  # Keras' gate order: input, forget, cell, output
        forget = keras.ops.log(super().__call__((units,), dtype))
        zeros = keras.ops.zeros((units,), dtype=forget.dtype)
        return keras.ops.concatenate([-forget, forget, zeros, zeros])

    def get_config(self):
        return {"max_steps": self.max_steps, "seed": super().get_config()["seed"]}


def _chrono(kwargs: dict) -> dict:
    """Keras' LSTM arguments with the chrono biases, unless a saved layer gives its own."""
    return {"bias_initializer": ChronoBias(), **kwargs, "unit_forget_bias": False}


@keras.saving.register_keras_serializable(package="vqa")
class ChronoLSTMLayer(keras.layers.LSTM):
    def __init__(self, units, **kwargs):
        super().__init__(units, **_chrono(kwargs))


@keras.saving.register_keras_serializable(package="vqa")
class ChronoLSTMCell(keras.layers.LSTMCell):
    def __init__(self, units, **kwargs):
        super().__init__(units, **_chrono(kwargs))


@register_recurrent("lstm_chrono")
class ChronoLSTM(Recurrent):
    """An LSTM whose forget gates start to remember for 1 to 39 steps (`ChronoBias`), for
    answers that hang on words far back in a long question."""

    layer, cell, states = ChronoLSTMLayer, ChronoLSTMCell, 2
