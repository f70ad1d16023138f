"""`heartline eval emotion`: a model's F1 per label space on a labelled data set.

GoEmotions is multi-label: predictions are the model's present labels, scored
over the 28 fine labels, Ekman-7 and sentiment. SMP2020 and MELD are
single-label: the prediction is the dominant label's class (its Ekman group,
with disgust counted as anger for SMP2020, which has no disgust class).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from agent.emotion.base import EmotionModel
from agent.emotion.labels import EKMAN_OF, LABELS
from agent.training.emotion.datasets import DataFormat, Dataset
from agent.training.emotion.scoring import (
    EKMAN_CLASSES,
    SENTIMENT_CLASSES,
    SpaceScore,
    score_space,
    to_ekman,
    to_sentiment,
)
from agent.values import EmotionReading

__all__ = ["Evaluation", "evaluate", "predict_all", "write_confusion_png"]

_BATCH = 64


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Scores of one model on one data set; `primary` names the headline space."""

    data_format: DataFormat
    model: str
    examples: int
    seconds: float
    primary: str
    spaces: dict[str, SpaceScore]
    confusion_classes: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]

    def summary(self) -> dict[str, object]:
        """One JSON-ready object; `ekman_macro_f1` only where Ekman-7 is defined."""
        headline = self.spaces[self.primary]
        result: dict[str, object] = {
            "format": self.data_format.value,
            "model": self.model,
            "examples": self.examples,
            "seconds": round(self.seconds, 2),
            "macro_f1": headline.macro_f1,
            "micro_f1": headline.micro_f1,
            "weighted_f1": headline.weighted_f1,
        }
        if "ekman" in self.spaces:
            result["ekman_macro_f1"] = self.spaces["ekman"].macro_f1
        result["spaces"] = {name: space.as_dict() for name, space in self.spaces.items()}
        return result


def predict_all(
    model: EmotionModel, texts: Sequence[str], *, progress: bool
) -> list[EmotionReading]:
    """Readings for every text, in batches, with a progress bar on stderr."""
    readings: list[EmotionReading] = []
    with tqdm(total=len(texts), unit="text", desc="reading", disable=not progress) as bar:
        for start in range(0, len(texts), _BATCH):
            batch = texts[start : start + _BATCH]
            readings.extend(model.predict(batch))
            bar.update(len(batch))
    return readings


def evaluate(model: EmotionModel, dataset: Dataset, *, progress: bool = True) -> Evaluation:
    texts = [example.text for example in dataset.examples]
    started = time.perf_counter()
    readings = predict_all(model, texts, progress=progress)
    seconds = time.perf_counter() - started
    gold = [frozenset(example.labels) for example in dataset.examples]
    if dataset.multi_label:
        predicted = [frozenset(reading.present()) for reading in readings]
        # A model that decides the Ekman groups itself is scored on those decisions.
        predicted_groups = [
            frozenset(r.groups) if r.groups else to_ekman(p)
            for r, p in zip(readings, predicted, strict=True)
        ]
        spaces = {
            "fine": score_space("fine", gold, predicted, LABELS),
            "ekman": score_space(
                "ekman", [to_ekman(g) for g in gold], predicted_groups, EKMAN_CLASSES
            ),
            "sentiment": score_space(
                "sentiment",
                [to_sentiment(g) for g in gold],
                [to_sentiment(p) for p in predicted],
                SENTIMENT_CLASSES,
            ),
        }
        primary = "fine"
        # The confusion matrix needs one class per side: Ekman groups, where gold has one.
        pairs = [
            (next(iter(to_ekman(g))), EKMAN_OF[r.dominant])
            for g, r in zip(gold, readings, strict=True)
            if len(to_ekman(g)) == 1
        ]
        classes = EKMAN_CLASSES
    else:
        classes = dataset.classes()
        single = [frozenset({_as_class(r.dominant, classes)}) for r in readings]
        primary = "ekman" if dataset.format is DataFormat.MELD else "classes"
        spaces = {primary: score_space(primary, gold, single, classes)}
        pairs = [(next(iter(g)), next(iter(p))) for g, p in zip(gold, single, strict=True)]
    return Evaluation(
        data_format=dataset.format,
        model=readings[0].model if readings else "",
        examples=len(texts),
        seconds=seconds,
        primary=primary,
        spaces=spaces,
        confusion_classes=classes,
        confusion=_confusion(pairs, classes),
    )


def _as_class(label: str, classes: Sequence[str]) -> str:
    """A fine label as one of a single-label data set's classes (they are Ekman groups)."""
    group = EKMAN_OF[label]
    if group in classes:
        return group
    return "anger" if group == "disgust" else "neutral"


def _confusion(
    pairs: Sequence[tuple[str, str]], classes: Sequence[str]
) -> tuple[tuple[int, ...], ...]:
    index = {label: i for i, label in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    for truth, guess in pairs:
        matrix[index[truth]][index[guess]] += 1
    return tuple(tuple(row) for row in matrix)


def write_confusion_png(evaluation: Evaluation, path: Path) -> None:
    """The confusion matrix (rows: truth, columns: prediction) as a PNG, rows normalised."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = evaluation.confusion_classes
    counts = evaluation.confusion
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
    space = "Ekman-7" if evaluation.data_format is DataFormat.GOEMOTIONS else "classes"
    axes.set_title(f"{evaluation.model} on {evaluation.data_format.value} ({space})")
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
