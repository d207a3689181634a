"""Plots written as PNG files: training curves and confusion matrices.

matplotlib is imported inside each function, with its file-only backend, so that
importing vqa never needs a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(histories: Mapping[str, pd.DataFrame], out: str | Path,
                title: str = "validation accuracy") -> Path:
    """Validation accuracy per epoch, one line per variant (history.csv tables)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for name, history in histories.items():
        ax.plot(history["epoch"] + 1, 100 * history["val_vqa_score"], marker="o",
                markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation VQA accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def plot_confusion(true: Sequence[str], predicted: Sequence[str], out: str | Path,
                   title: str) -> Path:
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
                ax.text(j, i, f"{100 * matrix[i, j]:.0f}", ha="center", va="center",
                        fontsize=6, color="white" if matrix[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)
