"""Question-guided attention over the image grid: stacked hops that read the grid cell by
cell instead of pooling it first. Registered by name (`attention.attention` in a config):
`soft` weighs every cell (trained by backpropagation), `hard` looks at one cell a hop,
sampled, trained with REINFORCE."""

from __future__ import annotations

import keras
from keras import ops

from vqa.models.checks import check_sizes
from vqa.models.grid import coordinates
from vqa.models.losses import soft_crossentropy
from vqa.registry import Registry

ATTENTIONS = Registry("attention", "vqa.models.attention.register_attention")


def register_attention(name: str):
    """Class decorator: make a StackedAttention subclass available as `attention: name`."""
    return ATTENTIONS.decorator(name, StackedAttention)


def get_attention(name: str) -> type:
    """The attention registered as `name`; an unknown name is a one-line ConfigError."""
    return ATTENTIONS.named(name)


def _scorers(
    units: int, hops: int, items_shape, query_dim: int, names: tuple[str, str, str]
) -> tuple[list, list, list]:
    """Per hop, the three layers of additive attention, built: W_k over the items, W_u
    over the query (no bias) and w (one score)."""
    layers: tuple[list, list, list] = ([], [], [])
    for hop in range(hops):
        for group, (name, kwargs, shape) in zip(
            layers,
            (
                (names[0], {}, items_shape),
                (names[1], {"use_bias": False}, (None, query_dim)),
                (names[2], {}, (None, None, units)),
            ),
        ):
            layer = keras.layers.Dense(
                1 if group is layers[2] else units, name=f"{name}{hop}", **kwargs
            )
            layer.build(shape)
            group.append(layer)
    return layers


def word_weights(logits, ids):
    """a, the softmax of `logits` [batch, L] over the words that are not padding (`ids`
    0): [batch, L]."""
    logits = ops.where(ops.not_equal(ids, 0), logits, ops.full_like(logits, -1e4))
    return ops.softmax(logits, axis=-1)  # -1e4: finite in float16


def read_words(logits, states, ids):
    """sum_w a_w h_w, a = word_weights(logits, ids): one reading of the question, [batch, w]."""
    return ops.sum(ops.expand_dims(word_weights(logits, ids), -1) * states, axis=1)


@keras.saving.register_keras_serializable(package="vqa")
class StackedAttention(keras.layers.Layer):
    """Stacked soft attention (Yang et al. 2016, "Stacked Attention Networks").

    Each hop scores every cell against the current query,
    p = softmax(w . tanh(W_v v_i + W_u u)), takes the weighted sum of the cells, and
    adds it to the query (u <- u + sum_i p_i v_i), so that a second hop can look again
    knowing what the first one found.

    With `words`, each hop first reads the question again, word by word: it scores every
    word's state against the current query, a_w = softmax(w . tanh(W_h h_w + W_u u)) over
    the words that are not padding, and adds W_c sum_w a_w h_w to the query it scores the
    cells with. One question vector has to hold both objects of "Is the cube the same
    colour as the sphere?"; the words let each hop pick its own. W_c starts at zero, so
    the layer starts out computing what it computes without words (a run trained
    without them can be trained on with them, `--init-from`).

    With `counts`, each hop also says how many cells it marks: sum_i sigmoid(s_i + b),
    s_i the cell scores the softmax turns into weights and b a learnt shift. The softmax
    weights sum to 1 whatever they cover, so a glimpse alone cannot tell one red object
    from three; "Are there as many red objects as squares?" needs both numbers.

    With `relative`, every hop after the first also scores each cell's offset from where
    the previous hop looked (dx, dy and distance from the weighted mean of its cells'
    positions, the grid taken as square, positions in [-1, 1]): w . tanh(... + W_r d_i).
    "The object left of the red circle" and "the object closest to the red circle" are
    then the first hop finding the circle and the second scoring offsets from it. W_r
    starts at zero.

    Args:
        units: size of the space cells and query are scored in.
        hops: how many times to attend (1 or 2 in the paper).
        words: whether each hop also attends over the question's words.
        counts: whether each hop also gives its soft count of marked cells.
        relative: whether hops after the first score offsets from the previous hop.

    Call arguments:
        inputs: [question, cells]: [batch, q_dim] and [batch, n_cells, dim]; with `words`,
            also [word_states, token_ids]: [batch, L, w_dim] and [batch, L] (0 = padding).

    Returns:
        [glimpses, weights]: every hop's weighted sum of the cells, concatenated
        [batch, hops * dim] (with `counts`, the hops' counts first: [batch, hops +
        hops * dim]), and every hop's weights [batch, hops, n_cells] (each row
        sums to 1). The classifier sees each hop's glimpse on its own, as multi-glimpse
        models (MCB, MLB) give them: "Is the cube the same colour as the sphere?" needs
        what both hops found, side by side. (SAN's paper classifies the running query u,
        where the hops' glimpses are summed into one vector.)
    """

    def __init__(
        self,
        units: int,
        hops: int,
        words: bool = False,
        counts: bool = False,
        relative: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_sizes(units=units, hops=hops)
        if relative and hops < 2:
            raise ValueError(
                f"relative needs hops >= 2 (offsets from the previous hop). Received: hops={hops}"
            )
        self.units = units
        self.hops = hops
        self.words = words
        self.counts = counts
        self.relative = relative
        self.supports_masking = True  # the word states come masked; the ids mark padding

    def compute_mask(self, inputs, mask=None):
        return None

    def build(self, input_shape):
        question_shape, cells_shape = input_shape[:2]
        dim = cells_shape[-1]
        self.query = keras.layers.Dense(dim, activation="tanh", name="query")
        self.query.build(question_shape)
        self.score_cells, self.score_query, self.score = _scorers(
            self.units, self.hops, cells_shape, dim, ("cells", "query", "score")
        )
        self.word_keys, self.word_query, self.word_score, self.word_value = [], [], [], []
        if self.words:
            words_shape = input_shape[2]
            self.word_keys, self.word_query, self.word_score = _scorers(
                self.units, self.hops, words_shape, dim, ("word_keys", "word_query", "word_score")
            )
            for hop in range(self.hops):
                value = keras.layers.Dense(
                    dim, use_bias=False, kernel_initializer="zeros", name=f"word_value{hop}"
                )
                value.build((None, words_shape[-1]))
                self.word_value.append(value)
        self.offsets = []  # W_r of hops 1, 2...: (dx, dy, distance) -> units
        if self.relative:
            side = int(round((cells_shape[1] or 0) ** 0.5))
            if not side or side * side != cells_shape[1]:
                raise ValueError(
                    f"relative needs a known, square grid of cells. Received {cells_shape[1]} cells"
                )
            self.side = side
            for hop in range(1, self.hops):
                offset = keras.layers.Dense(
                    self.units, use_bias=False, kernel_initializer="zeros", name=f"offset{hop}"
                )
                offset.build((None, None, 3))
                self.offsets.append(offset)
        if self.counts:
            self.count_shift = self.add_weight(
                shape=(self.hops,), initializer="zeros", name="count_shift"
            )

    def _scores(self, keys, query, score, items, u, extra=0.0):
        """w . tanh(W_k item + W_u u + extra) for every item: [batch, n]."""
        joint = ops.tanh(keys(items) + ops.expand_dims(query(u), 1) + extra)  # [b, n, units]
        return ops.squeeze(score(joint), -1)

    def _positions(self, dtype):
        """Every cell's (x, y) in [-1, 1], in the order the grid was flattened: [n, 2]."""
        return ops.reshape(coordinates(self.side, self.side, dtype), (-1, 2))

    def _offsets(self, hop, p, positions):
        """W_r (dx, dy, distance) of every cell from the previous hop's mean position."""
        looked = ops.matmul(p, positions)  # [b, 2]: where the previous hop looked
        d = ops.expand_dims(positions, 0) - ops.expand_dims(looked, 1)  # [b, n, 2]
        distance = ops.sqrt(ops.sum(d * d, axis=-1, keepdims=True) + 1e-6)
        return self.offsets[hop - 1](ops.concatenate([d, distance], axis=-1))

    def _read_words(self, hop, u, states, ids):
        """This hop's reading of the question: W_c sum_w a_w h_w, [batch, dim]."""
        logits = self._scores(
            self.word_keys[hop], self.word_query[hop], self.word_score[hop], states, u
        )  # [b, L]
        return self.word_value[hop](read_words(logits, states, ids))

    def _look(self, scores, cells, training):
        """One hop's glimpse and weights from its cell scores [batch, n]: the softmax's
        weighted sum of the cells."""
        p = ops.softmax(scores, axis=-1)
        return ops.sum(ops.expand_dims(p, -1) * cells, axis=1), p  # [b, dim], [b, n]

    def call(self, inputs, training=None):
        question, cells = inputs[:2]
        u = self.query(question)  # [batch, dim]
        positions = self._positions(cells.dtype) if self.relative else None
        glimpses, weights, counts = [], [], []
        for hop in range(self.hops):
            query = u + self._read_words(hop, u, *inputs[2:]) if self.words else u
            extra = self._offsets(hop, weights[-1], positions) if self.relative and hop else 0.0
            s = self._scores(
                self.score_cells[hop], self.score_query[hop], self.score[hop], cells, query, extra
            )  # [b, n]
            attended, p = self._look(s, cells, training)
            u = u + attended
            glimpses.append(attended)
            weights.append(p)
            if self.counts:
                shift = ops.cast(self.count_shift[hop], s.dtype)
                counts.append(ops.sum(ops.sigmoid(s + shift), axis=-1, keepdims=True))
        return ops.concatenate(counts + glimpses, axis=-1), ops.stack(weights, axis=1)

    def compute_output_shape(self, input_shape):
        cells_shape = input_shape[1]
        width = self.hops * cells_shape[-1] + (self.hops if self.counts else 0)
        return ((cells_shape[0], width), (cells_shape[0], self.hops, cells_shape[1]))

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "hops": self.hops,
            "words": self.words,
            "counts": self.counts,
            "relative": self.relative,
        }


ATTENTIONS.add("soft", StackedAttention)


class CellDrawing:
    """What the layers that draw the cell they read share (HardAttention, the hard
    caption decoder): the entropy bonus's weight, the draws' seed, `_look` through
    draw_cell, keeping each draw of a training call in `_drawn` for the layer to sum
    into `chosen`, and their config. ReinforcedModel finds them by `reinforce`."""

    reinforce = True

    def _init_drawing(self, entropy: float, seed) -> None:
        if entropy < 0:
            raise ValueError(f"entropy must be >= 0. Received: entropy={entropy}")
        self.entropy, self.seed = float(entropy), seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.chosen = None  # (log p of the cells read, entropy): [batch] each, training

    def _look(self, scores, cells, training):
        context, weights, drawn = draw_cell(scores, cells, training, self.seed_generator)
        if drawn is not None:
            self._drawn.append(drawn)
        return context, weights

    def get_config(self):
        return {**super().get_config(), "entropy": self.entropy, "seed": self.seed}


@register_attention("hard")
@keras.saving.register_keras_serializable(package="vqa")
class HardAttention(CellDrawing, StackedAttention):
    """Stochastic hard attention (Xu et al. 2015, "Show, Attend and Tell", section 4.1):
    each hop looks at one cell, drawn from the same distribution p = softmax(scores) that
    soft attention averages with, so its glimpse is that cell alone.

    Drawing a cell has no gradient. The scores are trained with REINFORCE: the model's
    loss gains -A log p(chosen cells) - entropy H(p), A = log P(answer | chosen cells)
    less its mean over the batch (the baseline: the batch's own mean, which needs no
    state and adapts at once; Xu et al. keep a moving average), and the entropy bonus
    keeps the hops exploring. `ReinforcedModel` adds that term; everything after the
    glimpse trains by backpropagation as usual.

    At inference each hop takes its most probable cell (argmax), and the weights it
    returns are one-hot: the cells it chose, which `--explain` draws.

    Args:
        units, hops, words, counts, relative: as StackedAttention.
        entropy: weight of the entropy bonus.
        seed: of the draws (None: from keras.utils.set_random_seed).
    """

    def __init__(self, units: int, hops: int, entropy: float = 0.01, seed=None, **kwargs):
        super().__init__(units, hops, **kwargs)
        self._init_drawing(entropy, seed)

    def call(self, inputs, training=None):
        self._drawn = []
        outputs = super().call(inputs, training=training)
        if self._drawn:  # summed over the hops: one draw of all of them
            self.chosen = tuple(sum(h[i] for h in self._drawn) for i in range(2))
        return outputs


def draw_cell(scores, cells, training, seed_generator):
    """Hard attention's look at [batch, n, dim] `cells` by their [batch, n] scores:
    (the cell read [batch, dim], its one-hot weights [batch, n], and while training
    (log p of the drawn cell, the entropy of p) [batch] each, else None). Training draws
    the cell from p = softmax(scores); inference takes the most probable (ties share)."""
    log_p = ops.log_softmax(ops.cast(scores, "float32"), axis=-1)  # [b, n]
    if training:
        index = keras.random.categorical(log_p, 1, seed=seed_generator)[:, 0]
        weights = ops.one_hot(index, ops.shape(scores)[-1], dtype="float32")
        drawn = (ops.sum(weights * log_p, axis=-1), -ops.sum(ops.exp(log_p) * log_p, axis=-1))
    else:  # no argmax: tf2onnx writes it with an op onnxruntime cannot load
        weights = ops.cast(ops.equal(log_p, ops.max(log_p, axis=-1, keepdims=True)), "float32")
        weights, drawn = weights / ops.sum(weights, axis=-1, keepdims=True), None
    weights = ops.cast(weights, cells.dtype)
    return ops.sum(ops.expand_dims(weights, -1) * cells, axis=1), weights, drawn


@keras.saving.register_keras_serializable(package="vqa")
class ReinforcedModel(keras.Model):
    """A model with hard attention (HardAttention, the hard caption decoder): its
    training loss adds each such layer's REINFORCE term (see HardAttention) to the
    cross-entropy, weighted as the loss is (rows that pad a batch weigh 0). The term is
    worth 0 and changes only the gradient, so the logged loss is the cross-entropy.
    Built like keras.Model(inputs, outputs); validation and prediction are those of
    any model."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = super().compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )
        if not training:
            return total
        log_likelihood, weight = _log_likelihood(y, y_pred, sample_weight)
        reward = ops.stop_gradient(log_likelihood)  # [batch]

        def mean(v):  # over the rows that count (padding rows weigh 0)
            return ops.sum(weight * v) / ops.maximum(ops.sum(weight), 1.0)

        advantage = reward - mean(reward)
        for layer in sampling_layers(self):
            if layer.chosen is not None:
                log_p, entropy = layer.chosen
                # x - stop_gradient(x): worth 0, its gradient x's. The term changes the
                # gradient only, so the loss Keras logs stays the cross-entropy.
                total = total - mean(advantage * (log_p - ops.stop_gradient(log_p)))
                total = total - layer.entropy * mean(entropy - ops.stop_gradient(entropy))
        return total


def _log_likelihood(y, y_pred, sample_weight):
    """Each row's log-likelihood of its target, and the row's weight: an answer
    ([batch, answers] soft targets) or a caption ([batch, T] next words, their weights
    marking the words)."""
    if len(y_pred.shape) == 3:  # a caption: the sum over its words
        words = ops.ones(ops.shape(y), "float32") if sample_weight is None else sample_weight
        per_word = keras.losses.sparse_categorical_crossentropy(y, y_pred)
        return -ops.sum(per_word * ops.cast(words, per_word.dtype), axis=1), ops.ones(
            ops.shape(y)[:1], per_word.dtype
        )
    log_likelihood = -soft_crossentropy(y, y_pred)
    if sample_weight is None:
        return log_likelihood, ops.ones_like(log_likelihood)
    return log_likelihood, ops.cast(ops.reshape(sample_weight, (-1,)), log_likelihood.dtype)


def sampling_layers(model: keras.Model) -> list:
    """The layers of `model` and of the models inside it that draw what they look at
    (`reinforce = True`): HardAttention, the hard caption decoder."""
    found = []
    for layer in model.layers:
        if getattr(layer, "reinforce", False):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += sampling_layers(layer)
    return found
