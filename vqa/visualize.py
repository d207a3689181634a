"""Plots written as PNG files: training curves, confusion matrices, and the
explanation of an answer (where the model looked).

matplotlib is imported inside each function, with its file-only backend, so that
importing vqa never needs a display.
"""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import pandas as pd
from PIL import Image


# What the drawings read of an answer (vqa.answering.AnswerResult, vqa.runtime's) and
# of a caption (vqa.captioning.CaptionResult): described here rather than imported, so
# that this module stays below everything that draws with it.
class Answered(Protocol):
    question: str
    answer: str
    top_k: list[tuple[str, float]]
    attention: np.ndarray | None
    hop_attention: np.ndarray | None  # [hops, rows, cols]
    unknown_words: list[str]


class Captioned(Protocol):
    words: list[Any]  # each with .word, .probability and .attention


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    histories: Mapping[str, pd.DataFrame],
    out: str | Path,
    title: str = "validation accuracy",
    metric: str = "val_vqa_score",
) -> Path:
    """Validation accuracy (`metric`, a history.csv column) per epoch, one line per
    variant (history.csv tables)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for name, history in histories.items():
        first = 1 if (history["epoch"] == 0).any() else 0  # 0.1.0 numbered from 0
        ax.plot(
            history["epoch"] + first, 100 * history[metric], marker="o", markersize=3, label=name
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(
        "validation VQA accuracy (%)"
        if metric == "val_vqa_score"
        else f"{metric.replace('_', ' ')} (%)"
    )
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def plot_confusion(
    true: Sequence[str], predicted: Sequence[str], out: str | Path, title: str
) -> Path:
    """Row-normalised confusion matrix (scikit-learn) over the answers that occur."""
    from sklearn.metrics import confusion_matrix

    plt = _pyplot()
    labels = sorted(set(true) | set(predicted))
    matrix = confusion_matrix(list(true), list(predicted), labels=labels).astype(float)
    rows = matrix.sum(axis=1, keepdims=True)
    matrix = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size), dpi=110)
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (majority answer)")
    ax.set_title(title, fontsize=9)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j] >= 0.01:
                ax.text(
                    j,
                    i,
                    f"{100 * matrix[i, j]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if matrix[i, j] > 0.5 else "black",
                )
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


_DRAWING = threading.Lock()  # matplotlib's font and text caches are shared


def draw_explanation(
    img: Image.Image,
    result: Answered,
    box: tuple[float, float, float, float],
    out: str | Path | BinaryIO,
    grad_cam: np.ndarray | None = None,
) -> None:
    """Write a PNG: `img` with the attention heat map of `result` over `box` (left, top,
    right, bottom: the part of the image the model saw), beside the top answers. With
    two hops or more, one picture per hop: where each looked, not only their mean. A
    model without attention shows `grad_cam` instead, labelled as such."""
    from matplotlib.figure import Figure  # not pyplot: no global state, safe in threads

    shown = img.copy()
    shown.thumbnail((480, 480))
    scale = shown.width / img.width
    hops = result.hop_attention
    if hops is not None and len(hops) > 1:
        maps = [(hop, f"hop {i + 1} of {len(hops)}") for i, hop in enumerate(hops)]
    elif result.attention is None and grad_cam is not None:
        maps = [(grad_cam, f"Grad-CAM of {result.answer!r} (a gradient)")]
    else:
        maps = [(result.attention, "where the model looked")]
    with _DRAWING:
        fig = Figure(figsize=(8.5 + 4.0 * (len(maps) - 1), 4), dpi=100)
        *pictures, bars = fig.subplots(1, len(maps) + 1, width_ratios=[1.2] * len(maps) + [1])
        for picture, (heat, title) in zip(pictures, maps):
            picture.imshow(np.asarray(shown))
            picture.set_axis_off()
            if heat is None:
                picture.set_title("no map: no grid this backend can take a gradient of", fontsize=9)
                continue
            left, top, right, bottom = (v * scale for v in box)
            picture.imshow(
                heat,
                cmap="jet",
                alpha=0.45,
                vmin=0,
                extent=(left, right, bottom, top),
                interpolation="bilinear",
            )
            picture.set_xlim(0, shown.width)
            picture.set_ylim(shown.height, 0)
            rows, cols = heat.shape
            picture.set_title(
                f"{title} ({rows} x {cols} grid, busiest cell {heat.max():.0%})", fontsize=9
            )
        answers = [a for a, _ in result.top_k][::-1]  # best at the top
        probs = [p for _, p in result.top_k][::-1]
        bars.barh(range(len(probs)), probs, color="#3b75af")
        bars.set_yticks(range(len(probs)), answers)
        bars.set_xlim(0, 1.25)
        bars.set_xticks([0, 0.5, 1], ["0%", "50%", "100%"])
        for y, p in enumerate(probs):
            bars.text(p + 0.02, y, f"{p:.1%}", va="center", fontsize=9)
        bars.set_title("top answers", fontsize=9)
        fig.suptitle(textwrap.shorten(f"Q: {result.question}", 90))
        if result.unknown_words:
            fig.text(
                0.5,
                0.01,
                "words the model does not know: "
                + textwrap.shorten(", ".join(result.unknown_words), 80),
                ha="center",
                fontsize=8,
            )
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        fig.savefig(out, format="png")


def draw_caption(
    img: Image.Image,
    result: Captioned,
    box: tuple[float, float, float, float],
    out: str | Path | BinaryIO,
    per_row: int = 5,
) -> None:
    """Write a PNG: `img` with its caption, and under it one picture per word with the
    attention of that word's step laid over `box` (the part of the image the model
    saw), as in Xu et al.'s figures; a decoder without attention shows the words and
    their probabilities only."""
    from matplotlib.figure import Figure

    shown = img.copy()
    shown.thumbnail((320, 320))
    scale = shown.width / img.width
    words = result.words if result.words and result.words[0].attention is not None else []
    rows = 1 + -(-len(words) // per_row)
    with _DRAWING:
        fig = Figure(figsize=(2.2 * per_row, 2.4 * rows + 0.6), dpi=100)
        grid = fig.add_gridspec(rows, per_row)
        top = fig.add_subplot(grid[0, :])
        top.imshow(np.asarray(shown))
        top.set_axis_off()
        said = " ".join(f"{w.word} ({w.probability:.0%})" for w in result.words)
        top.set_title(textwrap.fill(said or "(an empty caption)", 100), fontsize=9)
        left, top_y, right, bottom = (v * scale for v in box)
        for i, word in enumerate(words):
            ax = fig.add_subplot(grid[1 + i // per_row, i % per_row])
            ax.imshow(np.asarray(shown))
            ax.imshow(
                word.attention,
                cmap="jet",
                alpha=0.45,
                vmin=0,
                extent=(left, right, bottom, top_y),
                interpolation="bilinear",
            )
            ax.set_xlim(0, shown.width)
            ax.set_ylim(shown.height, 0)
            ax.set_axis_off()
            ax.set_title(f"{word.word} ({word.probability:.0%})", fontsize=9)
        fig.suptitle(textwrap.shorten(f"{result.decode}: {result.caption}", 90))
        fig.tight_layout()
        fig.savefig(out, format="png")
