"""`heartline eval emotion`: a model's F1 per label space on a labelled data set.

GoEmotions is multi-label: predictions are the model's present labels, scored
over the 28 fine labels, Ekman-7 and sentiment. SMP2020 and MELD are
single-label: the prediction is the dominant label's class (its Ekman group,
with disgust counted as anger for SMP2020, which has no disgust class). The
support set is scored per language, by `agent.training.emotion.support`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from agent.emotion.base import EmotionModel
from agent.emotion.labels import EKMAN_OF, LABELS
from agent.training.emotion.confusion import Matrix, count_pairs
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

__all__ = ["Evaluation", "evaluate", "predict_all", "score_lines"]

_BATCH = 64


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Scores of one model on one data set; `primary` names the headline space.

    `confusion_png` is where the confusion matrix was drawn, once it has been.
    """

    data_format: DataFormat
    model: str
    examples: int
    seconds: float
    primary: str
    spaces: dict[str, SpaceScore]
    confusion_classes: tuple[str, ...]
    confusion: Matrix
    confusion_png: Path | None = None

    @property
    def confusion_title(self) -> str:
        space = "Ekman-7" if self.data_format is DataFormat.GOEMOTIONS else "classes"
        return f"{self.model} on {self.data_format.value} ({space})"

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
        if self.confusion_png is not None:
            result["confusion_png"] = str(self.confusion_png)
        return result

    def lines(self) -> list[str]:
        """The report as text: the headline, a table per label space, where the PNG went."""
        lines = [
            f"{self.model} on {self.data_format.value}: {self.examples} examples "
            f"in {self.seconds:.1f} s"
        ]
        for name, space in self.spaces.items():
            lines += ["", *score_lines(name, space)]
        if self.confusion_png is not None:
            lines += ["", f"Confusion matrix: {self.confusion_png}"]
        return lines


def score_lines(name: str, space: SpaceScore) -> list[str]:
    """One label space's F1 figures and its per-class table."""
    return [
        f"{name}: macro-F1 {space.macro_f1:.4f}  micro-F1 {space.micro_f1:.4f}  "
        f"weighted-F1 {space.weighted_f1:.4f}",
        f"  {'class':<16}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>10}",
        *(
            f"  {c.label:<16}{c.precision:>10.3f}{c.recall:>10.3f}{c.f1:>10.3f}{c.support:>10}"
            for c in space.per_class
        ),
    ]


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
        confusion=count_pairs(pairs, classes),
    )


def _as_class(label: str, classes: Sequence[str]) -> str:
    """A fine label as one of a single-label data set's classes (they are Ekman groups)."""
    group = EKMAN_OF[label]
    if group in classes:
        return group
    return "anger" if group == "disgust" else "neutral"
