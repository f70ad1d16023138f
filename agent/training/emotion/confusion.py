"""Confusion matrices: counted from (truth, prediction) pairs, drawn as a PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["Matrix", "count_pairs", "write_confusion_png"]

Matrix = tuple[tuple[int, ...], ...]
"""Counts, rows the true class and columns the predicted one, in the classes' order."""


def count_pairs(pairs: Sequence[tuple[str, str]], classes: Sequence[str]) -> Matrix:
    index = {label: i for i, label in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    for truth, guess in pairs:
        matrix[index[truth]][index[guess]] += 1
    return tuple(tuple(row) for row in matrix)


def write_confusion_png(path: Path, *, classes: Sequence[str], counts: Matrix, title: str) -> None:
    """The matrix as a PNG, each cell's count shown and its colour the row's share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = [[c / (sum(row) or 1) for c in row] for row in counts]
    figure, axes = plt.subplots(figsize=(1.1 * len(classes) + 2, 1.0 * len(classes) + 1.5))
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for row, values in enumerate(counts):
        for column, count in enumerate(values):
            colour = "white" if shares[row][column] > 0.5 else "black"
            axes.text(column, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    axes.set_title(title)
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
