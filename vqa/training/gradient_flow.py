"""The gradient that reaches each word of the question (or of the caption) while a model
trains: the lecture's vanishing and exploding gradients, measured
(`train.log_gradient_flow: true`).

Ten times an epoch, on one fixed training batch, the loss's gradient with respect to the
word embeddings the question encoder reads: its norm at word t is how much training
signal reaches step t through the recurrence (each question's own loss, so batch-size
free). A vanilla RNN multiplies that signal by its recurrent matrix at every step back,
so the norm at the first word falls (vanishes) or grows (explodes) against the last;
LSTM's additive cell state carries it. Beside it, the global norm of all the weights'
gradients on that batch, before any clipping (`clip_norm` acts on it).

A caption decoder has a loss at every word; what is logged there is the loss at each
caption's last word (its <end>), back to the word embedding the decoder read at each
step: how much of the last word's signal reaches step t through the recurrence (at
the last step it is one step deep, at the first the caption's length).

Written to RUN/gradient_flow.csv (one row a probe: epoch, step, global_norm,
first_to_last, then word_00, word_01, ... the mean norm at each position over the
questions that reach it), RUN/gradient_flow.png (norm by position at the first, middle
and last probe) and TensorBoard (RUN/tensorboard/gradient_flow). TensorFlow backend.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from vqa.errors import ConfigError
from vqa.runs import atomic, files

log = logging.getLogger(__name__)

PROBES_PER_EPOCH = 10


def _watching(tape, embedding: keras.layers.Layer, model: keras.Model, x):
    """`model(x)` in inference mode with `tape` watching every output of `embedding` (the
    question encoder's embedded words; the decoder's, every step's at once): (the
    model's output, those outputs in the order they were made)."""
    seen = []
    read = embedding.call

    def watched(*args, **kwargs):
        out = read(*args, **kwargs)
        tape.watch(out)
        seen.append(out)
        return out

    embedding.call = watched
    try:
        return model(x, training=False), seen
    finally:
        del embedding.call  # the class's own again


def word_gradients(model: keras.Model):
    """A compiled function (x, y[, sample_weight]) -> ([batch, L] norm of each question's
    loss gradient at each word's embedding, 0 at padding; the global norm of the
    weights' gradient of the batch's training loss (the compiled loss, as Keras reduces
    it, and the layers' own terms, e.g. the referent's describe penalty), before clipping)."""
    import tensorflow as tf

    embedding = model.get_layer("question_encoder").get_layer("word_embedding")

    @tf.function
    def gradients(x, y, sample_weight):  # its Python body runs once, when traced
        with tf.GradientTape(persistent=True) as tape:
            predicted, seen = _watching(tape, embedding, model, x)
            # each question's own loss (the mean, a Loss object's or over a function's
            # per-question values, times the batch)
            own = tf.reduce_mean(model.loss(y, predicted)) * tf.cast(tf.shape(y)[0], "float32")
            # the training loss, as Keras reduces it, with any layer's own terms
            loss = model.compute_loss(x, y, predicted, sample_weight)
        per_word = tf.norm(tape.gradient(own, seen[0]), axis=-1)
        per_word *= tf.cast(x["question"] != 0, per_word.dtype)
        weights = tape.gradient(loss, model.trainable_variables)
        return per_word, tf.linalg.global_norm([g for g in weights if g is not None])

    return lambda x, y, w=None: tuple(np.asarray(v) for v in gradients(x, y, w))


def caption_gradients(model: keras.Model):
    """A compiled function (x, y[, sample_weight]) -> ([batch, T] norm of the gradient of
    each caption's loss at its last word with respect to the word embedding the decoder
    read at each step, 0 past the caption's end; the global norm of the weights'
    gradient of the batch's training loss (the compiled loss, as Keras reduces it, and
    the layers' own terms), before clipping)."""
    import tensorflow as tf

    embedding = model.get_layer("decoder").embedding

    @tf.function
    def gradients(x, y, sample_weight):  # its Python body runs once, when traced
        with tf.GradientTape(persistent=True) as tape:
            probs, seen = _watching(tape, embedding, model, x)  # [b, T, vocab]
            words = tf.cast(y != 0, probs.dtype)  # [b, T]
            per_word = keras.losses.sparse_categorical_crossentropy(y, probs)  # [b, T]
            # the training loss, as Keras reduces it, with the attention penalty
            loss = model.compute_loss(
                x, y, probs, words if sample_weight is None else sample_weight
            )
            last = tf.maximum(tf.reduce_sum(tf.cast(y != 0, tf.int32), axis=1) - 1, 0)
            last_loss = tf.gather(per_word, last, axis=1, batch_dims=1)  # [b]
            # rows are independent (no dropout, batch norm in inference): each its own
            total_last = tf.reduce_sum(last_loss)
        steps = tape.gradient(
            total_last, seen[0], unconnected_gradients=tf.UnconnectedGradients.ZERO
        )  # [b, T, word_dim]: the decoder embeds the caption's words at once
        weights = tape.gradient(loss, model.trainable_variables)
        norms = tf.norm(steps, axis=-1) * words  # [b, T]
        return norms, tf.linalg.global_norm([g for g in weights if g is not None])

    return lambda x, y, w=None: tuple(np.asarray(v) for v in gradients(x, y, w))


def summarize(per_word: np.ndarray, lengths: np.ndarray) -> dict:
    """One probe's row: first_to_last (the mean norm at the questions' first words over
    the mean at their last words; 0 when none reaches the first, NaN when none reaches
    any word) and the mean norm at each position over the questions that reach it."""
    last = per_word[np.arange(len(lengths)), lengths - 1].mean()
    ratio = float(per_word[:, 0].mean() / last) if last > 0 else float("nan")
    reach = np.arange(per_word.shape[1])[None, :] < lengths[:, None]
    means = per_word.sum(0) / np.maximum(reach.sum(0), 1)
    return {"first_to_last": ratio} | {f"word_{t:02d}": float(m) for t, m in enumerate(means)}


class GradientFlow(keras.callbacks.Callback):
    """Logs the gradient reaching each word of `batch`'s questions (see the module)."""

    def __init__(self, run: Path, batch: tuple, steps_per_epoch: int):
        super().__init__()
        if keras.backend.backend() != "tensorflow":
            raise ConfigError(
                "log_gradient_flow needs the TensorFlow backend. "
                f"Received: KERAS_BACKEND={keras.backend.backend()}"
            )
        self.run = Path(run)
        self.x, self.y = batch[0], batch[1]
        self.sample_weight = batch[2] if len(batch) > 2 else None
        self.captions = "caption" in self.x  # a caption decoder: its words are y's
        words = self.y if self.captions else self.x["question"]
        self.lengths = np.maximum((np.asarray(words) != 0).sum(1), 1)
        self.every = max(1, steps_per_epoch // PROBES_PER_EPOCH)
        self.rows: list[dict] = []
        self.epoch = self.probed = 0
        self.writer = None
        self.gradients = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.probed = epoch, 0
        if not self.rows and (self.run / files.GRADIENT_FLOW).is_file():  # resumed
            kept = pd.read_csv(self.run / files.GRADIENT_FLOW)
            self.rows = kept[kept["epoch"] < epoch + 1].to_dict("records")
        if epoch == 0 and not self.rows:
            self._probe()  # before the first step

    def on_train_batch_end(self, batch, logs=None):
        # Keras calls this every steps_per_execution batches: probe each `every` crossed.
        if (batch + 1) // self.every > self.probed:
            self.probed = (batch + 1) // self.every
            self._probe()

    def on_epoch_end(self, epoch, logs=None):
        table = pd.DataFrame(self.rows)
        with atomic.atomic_write(self.run / files.GRADIENT_FLOW) as tmp:
            table.to_csv(tmp, index=False)

    def on_train_end(self, logs=None):
        if self.rows:
            title = "gradient of the last word's loss reaching each word" if self.captions else None
            where = "caption" if self.captions else "question"
            plot(pd.DataFrame(self.rows), self.run / files.GRADIENT_FLOW_PLOT, title, where)

    def _probe(self) -> None:
        if self.gradients is None:
            self.gradients = (caption_gradients if self.captions else word_gradients)(self.model)
        y = self.y if self.captions else self.y.astype("float32")
        per_word, total = self.gradients(self.x, y, self.sample_weight)
        total = float(total)
        step = int(self.model.optimizer.iterations.numpy())
        row = {"epoch": self.epoch + 1, "step": step, "global_norm": total}
        row |= summarize(per_word, self.lengths)
        self.rows.append(row)
        self._tensorboard(row)

    def _tensorboard(self, row: dict) -> None:
        try:
            import tensorflow as tf
        except ImportError:
            return
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(
                str(self.run / files.TENSORBOARD / "gradient_flow")
            )
        with self.writer.as_default(step=row["step"]):
            for name, value in row.items():
                if name not in ("epoch", "step"):
                    tf.summary.scalar(f"gradient_flow/{name}", value)
        self.writer.flush()


def gradient_flow_callbacks(run: Path, config, batches, steps_per_epoch: int) -> list:
    """[GradientFlow on epoch 0's first batch] when the config logs the gradient flow
    (the same batch whenever the run resumes), else []."""
    if not config.train.log_gradient_flow:
        return []
    batches.start_epoch(0)
    return [GradientFlow(run, batches[0], steps_per_epoch)]


def plot(table: pd.DataFrame, out: Path, title: str | None = None, where: str = "question") -> None:
    """Gradient norm by word position at the first, middle and last probe (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    words = [c for c in table.columns if c.startswith("word_")]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i in sorted({0, len(table) // 2, len(table) - 1}):
        row = table.iloc[i]
        norms = row[words].to_numpy(dtype=float)
        shown = norms > 0
        ax.semilogy(
            np.arange(len(words))[shown] + 1,
            norms[shown],
            label=f"epoch {int(row['epoch'])}, step {int(row['step'])}",
        )
    ax.set_xlabel(f"word position in the {where}")
    ax.set_ylabel("gradient norm at the word")
    ax.set_title(title or "gradient reaching each word")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic.atomic_write(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def run_summary(run: Path) -> dict:
    """A run's gradient flow in three numbers (none without RUN/gradient_flow.csv): the
    first-to-last ratio before training and at its last probe, and the largest global
    norm before clipping of all its probes."""
    if not (Path(run) / files.GRADIENT_FLOW).is_file():
        return {}
    table = pd.read_csv(Path(run) / files.GRADIENT_FLOW)
    return {
        "first_to_last_start": float(table["first_to_last"].iloc[0]),
        "first_to_last_end": float(table["first_to_last"].iloc[-1]),
        "largest_norm": float(table["global_norm"].max()),
    }


def plot_variants(tables: dict[str, pd.DataFrame], out: Path, title: str) -> Path:
    """Each variant's gradient norm by word position before training and at its last
    probe, side by side (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, at, when in ((axes[0], 0, "before training"), (axes[1], -1, "after training")):
        for name, table in tables.items():
            words = [c for c in table.columns if c.startswith("word_")]
            norms = table[words].iloc[at].to_numpy(dtype=float)
            shown = norms > 0
            label = name if shown.any() else f"{name}: none reaches any word"
            ax.semilogy(np.arange(len(words))[shown] + 1, norms[shown], label=label)
        ax.set_title(when)
        ax.set_xlabel("word position in the question")
    axes[0].set_ylabel("gradient norm at the word")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic.atomic_write(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out
