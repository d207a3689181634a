"""Find the object the question names, then relate every cell to it: O(cells) a question."""

from __future__ import annotations

import keras
from keras import ops

from vqa.models import grid as g
from vqa.models.checks import check_sizes
from vqa.models.fusions.registry import register_fusion


@keras.saving.register_keras_serializable(package="vqa")
@register_fusion("referent", reads="grid", layer_name="referent")
class ReferentRelation(keras.layers.Layer):
    """Question-conditioned conv blocks, then relations to one referent (after SARN,
    Shen et al. 2018, with FiLM's conditioning, Perez et al. 2018).

    The grid is computed once per image; all here is per question, linear in the cells:

    1. `blocks` strided 3x3 convs whose batch-normed channels the question scales and
       shifts (relu((1 + gamma(q)) * h + beta(q))), so that "red" can turn up the red
       detectors early, as the question-conditioned CNN does, at a fraction of its cost.
    2. Find: soft attention over the cells (with their (x, y)) against the question
       gives the referent r, its features and position; with `referents: k`, k
       attentions find k objects ("the red circle" and "the blue object" of "same
       shape?"), each its own question projection and score over shared cell keys
       (or, with `composed_find`, from the words of its own description; below).
    3. Relate: every cell i through g([c_i, r_1..r_k, q, d_1..d_k]), d_j = (dx, dy,
       d^2) the offset of cell i from referent j; g's first layer is linear, so it is
       computed per part and broadcast (n additions, not n matrix products of the
       concatenation). The cost grows with k times the cells, never with their pairs.
    4. Pick: a softmax over g's outputs chooses the cell that answers ("the closest"),
       and their mean counts ("how many"); f reads [picked, mean, r_1..r_k].

    With `composed_find` (and `attention_word_embeddings`), a referent is found from
    its description's words, as a neural module network's find (Andreas et al. 2016):
    word w marks the cells it fits, m_w(i) = sigmoid(e_w . k_i + b_w); s_wj places it in
    referent j's description; referent j is softmax_i(sum_w s_wj log m_w(i)), and f reads
    each description's soft count, log(1 + sum_i prod_w m_w(i)^s_wj). Whose description
    (`word_slots`): each word's state (a softmax over the referents and "none"); with
    `descriptive_words`, d_w = sigmoid(v . e_w + c) says whether it describes; with
    `ordered_descriptions`, the order says whose: c_w = sum_{v<=w} relu(d_v - d_{v-1})
    counts the runs of describing words begun by w, s_wj = d_w max(0, 1 - |min(max(c_w,
    1), k) - j - 1|). `describe_penalty: p`: a training loss p * mean_w d_w from step
    `describe_penalty_from`.

    With `relate_pick` (composed_find, 2 referents), the pick is a neural module
    network's relate, added to g's pick score: log m_1(i) + log sigmoid(a(q) . t_i +
    b(q)) + log(1 - m_2(i)), the first description's cells in the asked relation to
    referent 2 (t_i = (dx, dy, dx^2 + dy^2), cell i's offset from it, in cells), less
    that referent; f reads its soft count too. `relate_cells`: cell to cell, log sum_j
    r_2(j) sigmoid(a(q) . t_ij + b(q)), a map spread over two objects relating to each.
    `relate_refines`: the first referent is that relation's softmax. `relation_words`:
    a(q), b(q) read sum_w (1 - d_w) e_w too. `find_sees_position: false`: the
    words' maps see what a cell looks like, not where it is. `find_sees_question: false`:
    the find's keys from blocks of their own that the question does not modulate.

    Args:
        units: width of g, f and the output.
        blocks: question-conditioned strided conv blocks before relating (0: none).
        channels: channels of those blocks.
        depth: layers of g (>= 1).
        referents: objects found and related to every cell (>= 1).
        composed_find, descriptive_words, ordered_descriptions, describe_penalty(_from),
            relate_pick, relate_cells, relate_refines, relation_words, find_sees_*:
            see above (composed_find needs attention_words and attention_word_embeddings).

    Call arguments:
        inputs: [question, grid]: [batch, q_dim] and [batch, rows, cols, c]; with the
            words, also [word_states, token_ids]: [batch, L, w] and [batch, L] (0: padding).

    Output shape:
        [batch, units]
    """

    reads_words = True  # with composed_find: each referent from its description's words

    def __init__(
        self,
        units: int,
        blocks: int = 1,
        channels: int = 32,
        depth: int = 2,
        referents: int = 1,
        composed_find: bool = False,
        descriptive_words: bool = False,
        ordered_descriptions: bool = False,
        describe_penalty: float = 0.0,
        describe_penalty_from: int = 0,
        relate_pick: bool = False,
        relate_cells: bool = False,
        relate_refines: bool = False,
        relation_words: bool = False,
        find_sees_position: bool = True,
        find_sees_question: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_sizes(units=units, channels=channels, depth=depth, referents=referents)
        if blocks < 0:
            raise ValueError(f"blocks must be 0 or more. Received: blocks={blocks}")
        self.units, self.blocks, self.channels, self.depth = units, blocks, channels, depth
        words_say, find = (descriptive_words, "descriptive_words: true"), "composed_find: true"
        two = (composed_find and referents == 2, f"{find} and referents: 2")
        for name, value, (has, need) in (  # an option, and what it needs
            ("descriptive_words", descriptive_words, (composed_find, find)),
            ("ordered_descriptions", ordered_descriptions, words_say),
            ("describe_penalty", describe_penalty, words_say),
            ("relate_pick", relate_pick, two),
            ("relate_cells", relate_cells, (relate_pick, "relate_pick: true")),
            ("relate_refines", relate_refines, (relate_cells, "relate_cells: true")),
            ("relation_words", relation_words, (relate_pick, "relate_pick: true")),
            ("find_sees_position", not find_sees_position, (composed_find, find)),
        ):
            if value and not has:
                raise ValueError(f"{name} needs {need}. Received: {name}={value}")
        for name, value in dict(
            describe_penalty=describe_penalty, describe_penalty_from=describe_penalty_from
        ).items():
            if value < 0:
                raise ValueError(f"{name} must be 0 or more. Received: {name}={value}")
        self.referents, self.relate_pick = referents, bool(relate_pick)
        self.relate_cells, self.find_sees_position = bool(relate_cells), bool(find_sees_position)
        self.relate_refines, self.relation_words = bool(relate_refines), bool(relation_words)
        self.find_sees_question = bool(find_sees_question)
        self.composed_find, self.descriptive_words = bool(composed_find), bool(descriptive_words)
        self.ordered_descriptions = bool(ordered_descriptions)
        self.describe_penalty = float(describe_penalty)
        self.describe_penalty_from = int(describe_penalty_from)
        self.supports_masking = True  # the word states come masked; the ids mark padding

    def compute_mask(self, inputs, mask=None):
        return None

    def build(self, input_shape):
        question_shape, grid_shape = input_shape[:2]
        u, c = self.units, grid_shape[-1]

        def dense(units, shape, name, **kwargs):
            layer = keras.layers.Dense(units, name=name, **kwargs)
            layer.build(shape)
            return layer

        self.convs, self.norms, self.films = [], [], []
        for i in range(self.blocks):  # a strided conv, its batch norm, its FiLM
            conv, norm = g.strided_block(self.channels, c, f"block{i}")
            self.convs.append(conv)
            self.norms.append(norm)
            self.films.append(dense(2 * self.channels, question_shape, f"block{i}_film"))
            c = self.channels
        cell = (None, None, c + 2)
        self.find_cell = dense(u, cell, "find_cell")
        self.g_cell = dense(u, cell, "g0_cell")
        self.g_question = dense(u, question_shape, "g0_question", use_bias=False)

        words = len(input_shape) == 4  # with the words: [b, L, q + e]
        if words != self.composed_find or (words and input_shape[2][-1] <= question_shape[-1]):
            raise ValueError(
                "composed_find: true needs attention_words: true and "
                "attention_word_embeddings: true (each word's state, then its embedding); "
                "the referent fusion reads the words for nothing else."
            )

        def per_referent(j):  # referent 0's layers keep the one-referent names and paths
            n = f"_{j}" if j else ""
            own_find = not self.composed_find
            return (
                dense(u, question_shape, f"find_question{n}", use_bias=False) if own_find else None,
                dense(1, (None, None, u), f"find_score{n}") if own_find else None,
                dense(u, (None, c + 2), f"g0_referent{n}", use_bias=False),
                dense(u, (None, None, 3), f"g0_offset{n}", use_bias=False),
            )

        self.find_question, self.find_score, self.g_referent, self.g_offset = per_referent(0)
        self.more_referents = [per_referent(j) for j in range(1, self.referents)]
        if self.composed_find:  # a word's map from its embedding, its place from its state
            q, w = question_shape[-1], input_shape[2][-1]
            self.word_match = dense(u, (None, None, w - q), "word_match")
            self.word_shift = dense(1, (None, None, w - q), "word_shift")
            none = 0 if self.descriptive_words else 1  # "in no description": a slot, or d_w
            if not self.ordered_descriptions:
                self.word_slot = dense(self.referents + none, (None, None, q), "word_slot")
            if self.descriptive_words:
                self.word_describes = dense(1, (None, None, w - q), "word_describes")
            if self.describe_penalty_from:
                # the batches trained on; each replica counts the same ones
                counter = dict(dtype="int32", trainable=False, aggregation="only_first_replica")
                self.steps = self.add_weight(shape=(), initializer="zeros", name="steps", **counter)
        self.g = [
            dense(u, (None, None, u), f"g{i}", activation="relu") for i in range(1, self.depth)
        ]
        self.pick_score = dense(1, (None, None, u), "pick_score")
        counts = self.referents + self.relate_pick if self.composed_find else 0
        self.f = dense(u, (None, (2 + self.referents) * u + counts), "f", activation="relu")
        self.key_convs, self.key_norms = [], []  # the find's own blocks, without the question
        for i in range(0 if self.find_sees_question else self.blocks):
            conv, norm = g.strided_block(self.channels, c if i else grid_shape[-1], f"key{i}")
            self.key_convs.append(conv)
            self.key_norms.append(norm)
        if self.relate_pick:  # the relation the question asks: a(q) . t_i + b(q)
            words = input_shape[2][-1] - question_shape[-1] if self.relation_words else 0
            self.relation = dense(4, (None, question_shape[-1] + words), "relation")

    def _cells(self, question, grid, training, blocks=None):
        """The FiLM-ed blocks' (or `blocks`') cells [b, n, c + 2], and the coordinates [1, n, 2]."""
        x = grid
        blocks = zip(self.convs, self.norms, self.films) if blocks is None else blocks
        for conv, norm, film in blocks:
            x = norm(conv(x), training=training)
            x = ops.relu(x if film is None else g.modulate(x, film(question)))
        rows, cols = ops.shape(x)[1], ops.shape(x)[2]
        xy = ops.reshape(g.coordinates(rows, cols, x.dtype), (1, -1, 2))  # [1, n, 2]
        cells = ops.reshape(x, (ops.shape(x)[0], -1, x.shape[-1]))  # [b, n, c]
        cells = ops.concatenate(
            [cells, ops.broadcast_to(xy, (ops.shape(cells)[0], ops.shape(cells)[1], 2))], axis=-1
        )  # [b, n, c + 2]
        return cells, xy

    def _find(self, inputs, cells, training=False) -> list:
        """Each referent's attention over the cells: `referents` weights [b, n]."""
        question = inputs[0]
        keys = self._find_keys(inputs, cells, training)  # [b, n, u]
        if self.composed_find:
            return [ops.softmax(logits, axis=-1) for logits in self._described(inputs, keys)]
        scores = [self.find_score] + [layers[1] for layers in self.more_referents]
        queries = [self.find_question(question)]
        queries += [layers[0](question) for layers in self.more_referents]  # [b, u]
        return [
            ops.softmax(ops.squeeze(score(ops.tanh(keys + ops.expand_dims(query, 1))), -1), axis=-1)
            for query, score in zip(queries, scores)
        ]

    def _find_keys(self, inputs, cells, training):
        """The cells' keys for the find [b, n, u], blind to (x, y) or to the question if
        so configured."""
        if self.key_convs:
            blocks = zip(self.key_convs, self.key_norms, [None] * len(self.key_convs))
            cells = self._cells(None, inputs[1], training, blocks)[0]
        return self.find_cell(cells if self.find_sees_position else g.without_position(cells))

    def _described(self, inputs, keys) -> list:
        """Each referent's log-evidence over the cells, sum_w s_wj log m_w(i): [b, n] each."""
        question, _, words, ids = inputs
        q = question.shape[-1]
        states, embeddings = words[..., :q], words[..., q:]  # [b, L, q], [b, L, e]
        fit = ops.einsum("blu,bnu->bln", self.word_match(embeddings), keys)
        fit = fit / float(self.units) ** 0.5 + self.word_shift(embeddings)  # [b, L, n]
        slots = self.word_slots(states, embeddings, ids)
        evidence = ops.einsum("blj,bln->bjn", slots, ops.log_sigmoid(fit))  # [b, k, n]
        return [evidence[:, j] for j in range(self.referents)]

    def word_slots(self, states, embeddings, ids):
        """With composed_find, s_wj: how much of each word is in referent j's description,
        [b, L, referents] (the rest of it in none)."""
        if self.ordered_descriptions:
            describes = self._describing(embeddings, ids)
            before = ops.pad(describes[:, :-1], ((0, 0), (1, 0), (0, 0)))  # d_{w-1}
            run = ops.clip(ops.cumsum(ops.relu(describes - before), axis=1), 1.0, self.referents)
            which = ops.cast(ops.arange(1, self.referents + 1), states.dtype)  # [k]
            return describes * ops.relu(1.0 - ops.abs(run - which))
        slots = ops.softmax(self.word_slot(states), axis=-1)[..., : self.referents]
        if self.descriptive_words:
            return slots * self._describing(embeddings, ids)
        return slots * ops.expand_dims(ops.cast(ops.not_equal(ids, 0), slots.dtype), -1)

    def _describing(self, embeddings, ids):
        """d_w, whether each word describes at all, 0 for padding: [b, L, 1]."""
        present = ops.cast(ops.not_equal(ids, 0), embeddings.dtype)
        return ops.sigmoid(self.word_describes(embeddings)) * ops.expand_dims(present, -1)

    def _describe_loss(self, inputs, training):
        """describe_penalty * the mean d_w, from step describe_penalty_from of training."""
        q, ids = inputs[0].shape[-1], inputs[3]
        words = ops.sum(ops.cast(ops.not_equal(ids, 0), inputs[0].dtype), axis=-1)  # [b]
        d = ops.sum(self._describing(inputs[2][..., q:], ids)[..., 0], axis=-1)
        d = d / ops.maximum(words, 1.0)
        weight = self.describe_penalty
        if self.describe_penalty_from:  # the training batches seen so far
            weight = weight * ops.cast(self.steps >= self.describe_penalty_from, d.dtype)
            if training:
                self.steps.assign_add(1)
        return weight * ops.mean(d)

    def where_it_looks(self, inputs):
        """The referents' attention [b, referents, n] at inference, and with relate_pick
        the pick's as a last map: what `explain` draws."""
        if not self.relate_pick:  # the finds alone, not the relations after them
            cells, _ = self._cells(inputs[0], inputs[1], training=False)
            return ops.stack(self._find(inputs, cells), axis=1)
        _, found, pick = self._forward(inputs, training=False)
        return ops.stack(found + [pick], axis=1)

    def looked_grid(self, grid_shape) -> tuple[int, int]:
        """The (rows, cols) those n cells make, from the grid input's shape."""
        rows, cols = grid_shape[1:3]
        for _ in range(self.blocks):  # each strided block, padding "same": ceil(x / 2)
            rows, cols = -(-rows // 2), -(-cols // 2)
        return rows, cols

    def call(self, inputs, training=None):
        if self.describe_penalty:  # the mean d_w over each question's words
            self.add_loss(self._describe_loss(inputs, training))
        return self._forward(inputs, training)[0]

    def _forward(self, inputs, training):
        """The output [b, units], the referents' weights and the pick's over the cells."""
        question, grid = inputs[:2]  # [b, q], [b, rows, cols, c]
        cells, xy = self._cells(question, grid, training)
        asked = question  # what the relation reads: and the words that do not describe
        if self.relation_words:
            embeddings = inputs[2][..., question.shape[-1] :]
            rest = self._describing(embeddings, inputs[3]) if self.descriptive_words else 0.0
            present = ops.cast(ops.not_equal(inputs[3], 0), question.dtype)[..., None]
            asked = ops.concatenate([question, ops.sum(embeddings * (present - rest), 1)], -1)
        counts = []  # Find: which cells the question names.
        if self.composed_find:  # and how many cells each description fits
            evidence = self._described(inputs, self._find_keys(inputs, cells, training))
            found = [ops.softmax(e, axis=-1) for e in evidence]
            counts = [ops.log(1.0 + ops.sum(ops.exp(e), axis=-1, keepdims=True)) for e in evidence]
            if self.relate_refines:  # the first referent: its cells in the asked relation
                related = self._related(asked, evidence, None, found[1], xy, grid.shape)
                found[0] = ops.softmax(related, axis=-1)
        else:
            found = self._find(inputs, cells, training)
        h = self.g_cell(cells) + ops.expand_dims(self.g_question(question), 1)  # [b, n, u]
        about, geometries = [], []
        relate = [(self.g_referent, self.g_offset)] + [layers[2:] for layers in self.more_referents]
        for weights, (g_referent, g_offset) in zip(found, relate):
            referent = ops.sum(ops.expand_dims(weights, -1) * cells, axis=1)  # [b, c + 2]
            # Relate: every cell to the referent, with its offset from it.
            offset = xy - ops.expand_dims(referent[:, -2:], 1)  # [b, n, 2]
            geometries.append(g.with_distance(offset))  # [b, n, 3]
            about.append(g_referent(referent))  # [b, u]
            h = h + g_offset(geometries[-1]) + ops.expand_dims(about[-1], 1)
        h = ops.relu(h)
        for layer in self.g:
            h = layer(h)

        # Pick one cell (closest, furthest), and average them all (how many).
        logits = ops.squeeze(self.pick_score(h), -1)  # [b, n]
        if self.relate_pick:  # the first description's cells in the asked relation
            if not self.relate_refines:
                related = self._related(asked, evidence, geometries[1], found[1], xy, grid.shape)
            logits = logits + related
            counts.append(ops.log(1.0 + ops.sum(ops.exp(related), axis=-1, keepdims=True)))
        pick = ops.softmax(logits, axis=-1)
        picked = ops.sum(ops.expand_dims(pick, -1) * h, axis=1)  # [b, u]
        out = self.f(ops.concatenate([picked, ops.mean(h, axis=1), *about, *counts], axis=-1))
        return out, found, pick

    def _related(self, question, evidence, geometry, anchor, xy, grid_shape):
        """log m_1(i) + the relation's fit (grid.related) + log(1 - m_2(i)): [b, n]."""
        cells = max(self.looked_grid(grid_shape))  # t_i in cells, not in [-1, 1]
        half = (cells - 1) / 2 if cells > 1 else 1.0
        to_cells = (anchor, xy) if self.relate_cells else (None, None)
        fit = g.related(self.relation(question), half, geometry, *to_cells)
        # The maps get its gradient too (stopped there, all learnt slower: referent2-relate)
        itself = ops.log(1.0 - 0.99 * ops.exp(evidence[1]))  # not the anchor
        return evidence[0] + fit + itself

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    REMOVED = dict(overlap=0.0, compare=False, shared_find=False, exclusive_readings=False)

    @classmethod
    def from_config(cls, config):
        """Models saved before the dead-end options went load when those were off."""
        config = dict(config)
        for name, off in cls.REMOVED.items():
            value = config.pop(name, off)
            if value != off:
                raise ValueError(
                    f"This model was saved with the referent fusion's {name}={value!r}, an "
                    "option vqa no longer has: train it again, or load it with the vqa "
                    "version that saved it."
                )
        return super().from_config(config)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "blocks": self.blocks,
            "channels": self.channels,
            "depth": self.depth,
            "referents": self.referents,
            "composed_find": self.composed_find,
            "descriptive_words": self.descriptive_words,
            "ordered_descriptions": self.ordered_descriptions,
            "describe_penalty": self.describe_penalty,
            "describe_penalty_from": self.describe_penalty_from,
            "relate_pick": self.relate_pick,
            "relate_cells": self.relate_cells,
            "relate_refines": self.relate_refines,
            "relation_words": self.relation_words,
            "find_sees_position": self.find_sees_position,
            "find_sees_question": self.find_sees_question,
        }
