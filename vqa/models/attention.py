"""Question-guided soft attention over the image grid, a relation module over pairs of
grid cells, and FiLM blocks that let the question modulate the grid's channels. All three
read the grid cell by cell instead of pooling it first.
"""

from __future__ import annotations

import keras
from keras import ops

from vqa.models.fusion import check_sizes


def _coordinates(rows, cols, dtype):
    """[rows, cols, 2]: each cell's (x, y) in [-1, 1]."""
    ys = ops.linspace(-1.0, 1.0, rows)
    xs = ops.linspace(-1.0, 1.0, cols)
    coords = ops.stack([ops.repeat(ops.expand_dims(xs, 0), rows, axis=0),
                        ops.repeat(ops.expand_dims(ys, 1), cols, axis=1)], axis=-1)
    return ops.cast(coords, dtype)


def _with_coordinates(grid):
    """[batch, rows, cols, c] -> [batch, rows, cols, c + 2]: each cell's (x, y) in [-1, 1]."""
    batch, rows, cols = ops.shape(grid)[0], ops.shape(grid)[1], ops.shape(grid)[2]
    coords = ops.broadcast_to(ops.expand_dims(_coordinates(rows, cols, grid.dtype), 0),
                              (batch, rows, cols, 2))
    return ops.concatenate([grid, coords], axis=-1)


def modulate(grid, gamma_beta):
    """Feature-wise linear modulation: (1 + gamma) * grid + beta, channel by channel.

    grid: [batch, rows, cols, n]; gamma_beta: [batch, 2n], gamma then beta (so that
    all-zero gamma_beta leaves the grid as it is).
    """
    gamma, beta = ops.split(gamma_beta, 2, axis=-1)  # [batch, n] each
    gamma = ops.expand_dims(ops.expand_dims(gamma, 1), 1)
    beta = ops.expand_dims(ops.expand_dims(beta, 1), 1)
    return (1.0 + gamma) * grid + beta


@keras.saving.register_keras_serializable(package="vqa")
class GridCoordinates(keras.layers.Layer):
    """Append each cell's (x, y) position in [-1, 1] to its features.

    Call arguments:
        grid: [batch, rows, cols, channels].

    Output shape:
        [batch, rows, cols, channels + 2]
    """

    def call(self, grid):
        return _with_coordinates(grid)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 2)


def _scorers(units: int, hops: int, items_shape, query_dim: int, names: tuple[str, str, str]
             ) -> tuple[list, list, list]:
    """Per hop, the three layers of additive attention, built: W_k over the items, W_u
    over the query (no bias) and w (one score)."""
    layers: tuple[list, list, list] = ([], [], [])
    for hop in range(hops):
        for group, (name, kwargs, shape) in zip(layers, (
                (names[0], {}, items_shape),
                (names[1], {"use_bias": False}, (None, query_dim)),
                (names[2], {}, (None, None, units)))):
            layer = keras.layers.Dense(1 if group is layers[2] else units,
                                       name=f"{name}{hop}", **kwargs)
            layer.build(shape)
            group.append(layer)
    return layers


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

    def __init__(self, units: int, hops: int, words: bool = False, counts: bool = False,
                 relative: bool = False, **kwargs):
        super().__init__(**kwargs)
        check_sizes(units=units, hops=hops)
        if relative and hops < 2:
            raise ValueError(f"relative needs hops >= 2 (offsets from the previous hop). "
                             f"Received: hops={hops}")
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
            self.units, self.hops, cells_shape, dim, ("cells", "query", "score"))
        self.word_keys, self.word_query, self.word_score, self.word_value = [], [], [], []
        if self.words:
            words_shape = input_shape[2]
            self.word_keys, self.word_query, self.word_score = _scorers(
                self.units, self.hops, words_shape, dim,
                ("word_keys", "word_query", "word_score"))
            for hop in range(self.hops):
                value = keras.layers.Dense(dim, use_bias=False, kernel_initializer="zeros",
                                           name=f"word_value{hop}")
                value.build((None, words_shape[-1]))
                self.word_value.append(value)
        self.offsets = []  # W_r of hops 1, 2...: (dx, dy, distance) -> units
        if self.relative:
            side = int(round((cells_shape[1] or 0) ** 0.5))
            if not side or side * side != cells_shape[1]:
                raise ValueError("relative needs a known, square grid of cells. Received "
                                 f"{cells_shape[1]} cells")
            self.side = side
            for hop in range(1, self.hops):
                offset = keras.layers.Dense(self.units, use_bias=False,
                                            kernel_initializer="zeros", name=f"offset{hop}")
                offset.build((None, None, 3))
                self.offsets.append(offset)
        if self.counts:
            self.count_shift = self.add_weight(shape=(self.hops,), initializer="zeros",
                                               name="count_shift")

    def _scores(self, keys, query, score, items, u, extra=0.0):
        """w . tanh(W_k item + W_u u + extra) for every item: [batch, n]."""
        joint = ops.tanh(keys(items) + ops.expand_dims(query(u), 1) + extra)  # [b, n, units]
        return ops.squeeze(score(joint), -1)

    def _positions(self, dtype):
        """Every cell's (x, y) in [-1, 1], in the order the grid was flattened: [n, 2]."""
        return ops.reshape(_coordinates(self.side, self.side, dtype), (-1, 2))

    def _offsets(self, hop, p, positions):
        """W_r (dx, dy, distance) of every cell from the previous hop's mean position."""
        looked = ops.matmul(p, positions)  # [b, 2]: where the previous hop looked
        d = ops.expand_dims(positions, 0) - ops.expand_dims(looked, 1)  # [b, n, 2]
        distance = ops.sqrt(ops.sum(d * d, axis=-1, keepdims=True) + 1e-6)
        return self.offsets[hop - 1](ops.concatenate([d, distance], axis=-1))

    def _read_words(self, hop, u, states, ids):
        """This hop's reading of the question: W_c sum_w a_w h_w, [batch, dim]."""
        logits = self._scores(self.word_keys[hop], self.word_query[hop],
                              self.word_score[hop], states, u)  # [b, L]
        logits = ops.where(ops.not_equal(ids, 0), logits, ops.full_like(logits, -1e4))
        a = ops.softmax(logits, axis=-1)  # -1e4: finite in float16
        return self.word_value[hop](ops.sum(ops.expand_dims(a, -1) * states, axis=1))

    def call(self, inputs):
        question, cells = inputs[:2]
        u = self.query(question)  # [batch, dim]
        positions = self._positions(cells.dtype) if self.relative else None
        glimpses, weights, counts = [], [], []
        for hop in range(self.hops):
            query = u + self._read_words(hop, u, *inputs[2:]) if self.words else u
            extra = (self._offsets(hop, weights[-1], positions)
                     if self.relative and hop else 0.0)
            s = self._scores(self.score_cells[hop], self.score_query[hop], self.score[hop],
                             cells, query, extra)  # [b, n]
            p = ops.softmax(s, axis=-1)
            attended = ops.sum(ops.expand_dims(p, -1) * cells, axis=1)  # [b, dim]
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
        return {**super().get_config(), "units": self.units, "hops": self.hops,
                "words": self.words, "counts": self.counts, "relative": self.relative}


@keras.saving.register_keras_serializable(package="vqa")
class RelationModule(keras.layers.Layer):
    """Relation Network (Santoro et al. 2017): a small MLP g applied to every ordered pair
    of cells together with the question, averaged over pairs.

    Each cell carries its (x, y) position in [-1, 1], so that relations such as
    "closest" and "left of" can be computed. g's first layer is linear in the
    concatenation [o_i, o_j, q], so it is computed as W_i o_i + W_j o_j + W_q q and
    broadcast over the pairs: n_cells^2 additions instead of n_cells^2 matrix products.

    Args:
        units: width of g's layers and of the output.
        depth: how many layers g has (>= 1).

    Call arguments:
        inputs: [question, grid]: [batch, q_dim] and [batch, rows, cols, channels].

    Output shape:
        [batch, units]: the mean over pairs of g, passed through one more ReLU layer (f).
    """

    def __init__(self, units: int, depth: int = 3, **kwargs):
        super().__init__(**kwargs)
        check_sizes(units=units, depth=depth)
        self.units = units
        self.depth = depth

    def build(self, input_shape):
        question_shape, grid_shape = input_shape
        cell_shape = (None, None, grid_shape[-1] + 2)
        self.first_cell = keras.layers.Dense(self.units, name="g0_first")
        self.first_cell.build(cell_shape)
        self.second_cell = keras.layers.Dense(self.units, use_bias=False, name="g0_second")
        self.second_cell.build(cell_shape)
        self.question = keras.layers.Dense(self.units, use_bias=False, name="g0_question")
        self.question.build(question_shape)
        self.g = []
        for i in range(1, self.depth):
            layer = keras.layers.Dense(self.units, activation="relu", name=f"g{i}")
            layer.build((None, None, None, self.units))
            self.g.append(layer)
        self.f = keras.layers.Dense(self.units, activation="relu", name="f")
        self.f.build((None, self.units))

    def call(self, inputs):
        question, grid = inputs
        cells = _with_coordinates(grid)
        cells = ops.reshape(cells, (ops.shape(grid)[0], -1, cells.shape[-1]))  # [b, n, c + 2]
        pairs = (ops.expand_dims(self.first_cell(cells), 2)  # o_i: [b, n, 1, units]
                 + ops.expand_dims(self.second_cell(cells), 1)  # o_j: [b, 1, n, units]
                 + ops.expand_dims(ops.expand_dims(self.question(question), 1), 1))
        hidden = ops.relu(pairs)  # [b, n, n, units]
        for layer in self.g:
            hidden = layer(hidden)
        # The mean, not the paper's sum: with 25-49 cells the sum of 600-2,400 ReLU
        # outputs saturates the softmax at the first steps (loss stuck at ~12 here).
        return self.f(ops.mean(hidden, axis=(1, 2)))  # [b, units]

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "depth": self.depth}


@keras.saving.register_keras_serializable(package="vqa")
class FiLMModule(keras.layers.Layer):
    """FiLM (Perez et al. 2018): residual conv blocks over the grid, each scaling and
    shifting its channels by amounts the question sets (feature-wise linear modulation).

    Where attention must first learn features that tell the cells apart and only then
    where to look, the question here gates the channels themselves, at every block: "red"
    can turn up the red detectors directly. Each block, as in the paper (cell coordinates
    in front of each 1x1 conv):
        x = relu(conv1x1([x, xy]));  h = batchnorm(conv3x3(x)) (no scale, no shift);
        x = x + relu((1 + gamma(q)) * h + beta(q))
    gamma is 1 + a learnt offset, so that the blocks start as plain residual blocks.
    A 1x1 conv stem before the blocks, a 1x1 conv and a max over the cells after them.

    Args:
        units: channels of the blocks and size of the output.
        blocks: how many FiLM blocks (the paper: 4).

    Call arguments:
        inputs: [question, grid]: [batch, q_dim] and [batch, rows, cols, channels].

    Output shape:
        [batch, units]
    """

    def __init__(self, units: int, blocks: int = 4, **kwargs):
        super().__init__(**kwargs)
        check_sizes(units=units, blocks=blocks)
        self.units = units
        self.blocks = blocks

    def build(self, input_shape):
        question_shape, grid_shape = input_shape
        n = self.units

        def conv(kernel, channels, name, **kwargs):
            layer = keras.layers.Conv2D(n, kernel, padding="same", name=name, **kwargs)
            layer.build((None, None, None, channels))
            return layer

        self.stem = conv(1, grid_shape[-1] + 2, "stem", activation="relu")
        self.in_convs, self.convs, self.norms, self.films = [], [], [], []
        for i in range(self.blocks):
            self.in_convs.append(conv(1, n + 2, f"block{i}_in", activation="relu"))
            self.convs.append(conv(3, n, f"block{i}_conv", use_bias=False))
            norm = keras.layers.BatchNormalization(center=False, scale=False,
                                                   name=f"block{i}_norm")
            norm.build((None, None, None, n))
            self.norms.append(norm)
            film = keras.layers.Dense(2 * n, name=f"block{i}_film")  # [gamma - 1, beta]
            film.build(question_shape)
            self.films.append(film)
        self.head = conv(1, n + 2, "head", activation="relu")

    def call(self, inputs, training=None):
        question, grid = inputs
        x = self.stem(_with_coordinates(grid))  # [b, rows, cols, units]
        for block_in, block_conv, norm, film in zip(self.in_convs, self.convs,
                                                   self.norms, self.films):
            x = block_in(_with_coordinates(x))
            h = norm(block_conv(x), training=training)
            x = x + ops.relu(modulate(h, film(question)))
        return ops.max(self.head(_with_coordinates(x)), axis=(1, 2))  # [b, units]

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "blocks": self.blocks}
