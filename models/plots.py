"""PNG plots people would rather look at than read: confusion matrix and learning curves."""
from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: pipelines run without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_matrix_png(matrix: np.ndarray, genres: Sequence[str], path: str, title: str) -> str:
    """``genres``: the label set (config.genres), label i = genres[i], as tick labels."""
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(genres)), genres, rotation=45, ha="right")
    ax.set_yticks(range(len(genres)), genres)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", color="white" if count > threshold else "black")
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(f"{title}\naccuracy {accuracy:.1%} over {matrix.sum()}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def learning_curves_png(history: dict[str, list[float]], path: str, title: str) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if key in history:
                ax.plot(range(1, len(history[key]) + 1), history[key], style, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
