"""Caption decoders over the image grid's cells (Show, Attend and Tell, Xu et al. 2015),
registered by name like the fusions: `attention` (soft attention over the cells at every
step) and `pooled`, its no-attention twin (the cells' mean at every step).

Each is one layer: `call([cells, tokens])` is teacher forcing, [batch, T] input tokens
(<start> w1 .. wn, 0-padded) to [batch, T, vocab] next-word probabilities and
[batch, T, cells] attention; `start` and `step` are the same computation one word at a
time, for decoding (vqa.captioning). Teacher forcing runs its steps as one symbolic loop
(`keras.ops.scan`), so a graph holds one step, not one a word: tracing it costs one
step's time whatever the caption length.
"""

from __future__ import annotations

import keras
from keras import ops

from vqa.models.attention import CellDrawing
from vqa.models.recurrent import get_recurrent
from vqa.registry import Registry

DECODERS = Registry("decoder", "vqa.models.decoders.register_decoder")


def register_decoder(name: str):
    """Class decorator: make a CaptionDecoder subclass available as `caption: {decoder:
    name}`."""
    check = DECODERS.decorator(name, CaptionDecoder)

    def add(cls: type) -> type:
        check(cls)
        cls.registered_name = name
        return cls

    return add


def get_decoder(name: str) -> type:
    return DECODERS.named(name)


class CaptionDecoder(keras.layers.Layer):
    """The shared recurrent decoder; `attends` says whether it looks at the cells anew
    each step (the subclasses' only difference)."""

    attends = True
    symbolic_loop = True  # teacher forcing's steps in one ops.scan (False: unrolled)

    def __init__(
        self,
        vocab_size: int,
        cell: str = "lstm",
        layers: int = 1,
        units: int = 256,
        word_dim: int = 128,
        attention_dim: int = 256,
        dropout: float = 0.2,
        penalty: float = 1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size, self.cell, self.layers, self.units = vocab_size, cell, layers, units
        self.word_dim, self.attention_dim = word_dim, attention_dim
        self.dropout_rate, self.penalty = dropout, penalty
        unit = get_recurrent(cell)
        self.per_cell = unit.states  # e.g. LSTM: (h, c); each layer's from the grid's mean
        self.embedding = keras.layers.Embedding(vocab_size, word_dim, name="word_embedding")
        self.cells = [unit.cell(units, name=f"{cell}_{i}") for i in range(layers)]
        self.init_states = [
            keras.layers.Dense(units, activation="tanh", name=f"init_{i}_{j}")
            for i in range(layers)
            for j in range(self.per_cell)
        ]
        if self.attends:
            self.key = keras.layers.Dense(attention_dim, name="attention_key")
            self.query = keras.layers.Dense(attention_dim, name="attention_query")
            self.score = keras.layers.Dense(1, name="attention_score")
            # Xu et al.'s gate: how much of the context the step takes
            self.gate = keras.layers.Dense(1, activation="sigmoid", name="context_gate")
        self.dropout = keras.layers.Dropout(dropout)
        self.out = keras.layers.Dense(vocab_size, name="next_word")

    def build(self, input_shape):
        cells_shape = input_shape[0]
        channels = cells_shape[-1]
        for dense in self.init_states:
            dense.build((None, channels))
        self.embedding.build((None,))
        for i, cell in enumerate(self.cells):
            cell.build((None, (self.word_dim + channels) if i == 0 else self.units))
        if self.attends:
            self.key.build((None, None, channels))
            self.query.build((None, self.units))
            self.score.build((None, None, self.attention_dim))
            self.gate.build((None, self.units))
        self.out.build((None, self.units + channels))

    def start(self, cells):
        """Per image: the keys of the cells (None without attention) and the first
        states, from the cells' mean."""
        mean = ops.mean(cells, axis=1)
        states = [dense(mean) for dense in self.init_states]
        keys = self.key(cells) if self.attends else None
        return keys, states

    def step(self, cells, keys, tokens, states, training=False):
        """One word: [batch] token ids and the states -> (next-word logits [batch,
        vocab], attention [batch, cells], new states)."""
        words = self.embedding(tokens)
        hidden, alpha, new_states = self._advance(cells, keys, words, states, training)
        return self.out(self.dropout(hidden, training=training)), alpha, new_states

    def _advance(self, cells, keys, words, states, training):
        """A step up to the output layer, from the embedded words [batch, word_dim]:
        (what it reads [batch, units + channels], attention [batch, cells], new states)."""
        top = states[-self.per_cell]  # the last layer's output h
        if self.attends:
            scores = self.score(ops.tanh(keys + ops.expand_dims(self.query(top), 1)))
            context, alpha = self._look(ops.squeeze(scores, -1), cells, training)
            context = context * self.gate(top)
        else:
            n = ops.shape(cells)[1]
            alpha = ops.ones(ops.shape(cells)[:2], dtype=cells.dtype) / ops.cast(n, cells.dtype)
            context = ops.mean(cells, axis=1)
        x = ops.concatenate([words, context], axis=-1)
        new_states = []
        for i, cell in enumerate(self.cells):
            own = states[i * self.per_cell : (i + 1) * self.per_cell]
            x, own = cell(x, own, training=training)
            new_states += list(own)
        return ops.concatenate([x, context], axis=-1), alpha, new_states

    def _look(self, scores, cells, training):
        """The step's context and weights from its cell scores [batch, cells]: soft
        attention's weighted sum."""
        alpha = ops.softmax(scores, axis=-1)  # [batch, cells]
        return ops.sum(cells * ops.expand_dims(alpha, -1), axis=1), alpha

    def _steps(self, cells, keys, tokens, states, training):
        """Every position's `_advance` under teacher forcing: what it reads [batch, T,
        units + channels] and its attention [batch, T, cells]. The words are embedded
        at once, before the loop."""
        words = self.embedding(tokens)  # [batch, T, word_dim]
        if not self.symbolic_loop:
            read, alphas = [], []
            for t in range(tokens.shape[1]):
                hidden, alpha, states = self._advance(cells, keys, words[:, t], states, training)
                read.append(hidden)
                alphas.append(alpha)
            return ops.stack(read, axis=1), ops.stack(alphas, axis=1)

        def body(carry, word):  # the carry: (read, alpha, *states), each step's output too
            carry = self._advance(cells, keys, word, list(carry[2:]), training)
            carry = (carry[0], carry[1], *carry[2])
            return carry, carry

        batch, n = ops.shape(cells)[0], ops.shape(cells)[1]
        dtype = states[0].dtype
        first = (
            ops.zeros((batch, self.units + cells.shape[-1]), dtype),
            ops.zeros((batch, n), dtype),
            *states,
        )
        _, (read, alphas, *_) = ops.scan(body, first, ops.transpose(words, (1, 0, 2)))
        return ops.transpose(read, (1, 0, 2)), ops.transpose(alphas, (1, 0, 2))

    def call(self, inputs, training=False):
        cells, tokens = inputs
        keys, states = self.start(cells)
        read, alphas = self._steps(cells, keys, tokens, states, training)  # [batch, T, ...]
        logits = self.out(self.dropout(read, training=training))  # every word at once
        probs = ops.softmax(ops.cast(logits, "float32"), axis=-1)
        if self.attends and self.penalty:
            words = ops.cast(ops.expand_dims(ops.not_equal(tokens, 0), -1), alphas.dtype)
            coverage = ops.sum(alphas * words, axis=1)  # [batch, cells]
            # per word, as the cross-entropy Keras averages over the words
            per_caption = ops.sum(ops.square(1.0 - coverage), -1) / tokens.shape[1]
            self.add_loss(self.penalty * ops.mean(per_caption))
        return probs, alphas

    def compute_output_shape(self, input_shape):
        cells_shape, tokens_shape = input_shape
        return ((*tokens_shape, self.vocab_size), (*tokens_shape, cells_shape[1]))

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "cell": self.cell,
            "layers": self.layers,
            "units": self.units,
            "word_dim": self.word_dim,
            "attention_dim": self.attention_dim,
            "dropout": self.dropout_rate,
            "penalty": self.penalty,
        }


@register_decoder("attention")
@keras.saving.register_keras_serializable(package="vqa")
class AttentionDecoder(CaptionDecoder):
    """Soft attention over the cells at every step, from the last layer's state."""

    attends = True


@register_decoder("pooled")
@keras.saving.register_keras_serializable(package="vqa")
class PooledDecoder(CaptionDecoder):
    """The no-attention twin: every step reads the cells' mean."""

    attends = False


@register_decoder("hard")
@keras.saving.register_keras_serializable(package="vqa")
class HardAttentionDecoder(CellDrawing, CaptionDecoder):
    """Stochastic hard attention (Xu et al. 2015, section 4.1): each step reads one cell,
    drawn from the attention distribution while training and the most probable one when
    decoding; trained with REINFORCE (vqa.models.attention.ReinforcedModel): reward the
    caption's log-likelihood, the batch mean as baseline, an entropy bonus. The
    attention maps it gives are the cells it read, one a word. No coverage penalty
    (`penalty` must be 0): it is soft attention's regulariser.
    """

    attends = True
    symbolic_loop = False  # each step's draw is kept (`_drawn`) for REINFORCE

    def __init__(self, vocab_size: int, *args, entropy: float = 0.01, seed=None, **kwargs):
        super().__init__(vocab_size, *args, **kwargs)
        if self.penalty:
            raise ValueError(
                "attention_penalty is soft attention's; set caption.attention_penalty: 0 "
                f"with decoder: hard. Received: penalty={self.penalty}"
            )
        self._init_drawing(entropy, seed)

    def call(self, inputs, training=False):
        self._drawn = []
        outputs = super().call(inputs, training=training)
        if self._drawn:  # the steps that read a word, summed: one draw of the caption
            words = ops.cast(ops.not_equal(inputs[1], 0), "float32")  # [batch, T]
            self.chosen = tuple(
                ops.sum(ops.stack([d[i] for d in self._drawn], axis=1) * words, axis=1)
                for i in range(2)
            )
        return outputs
