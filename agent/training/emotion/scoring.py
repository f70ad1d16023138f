"""F1 scores per label space: GoEmotions' fine labels, Ekman-7, sentiment, a data set's classes.

Pure functions over label sets, shared by training (threshold tuning, the
metrics file) and `heartline eval emotion`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent.emotion.labels import EKMAN, EKMAN_OF, LABELS, SENTIMENT_OF

__all__ = [
    "EKMAN_CLASSES",
    "SENTIMENT_CLASSES",
    "ClassScore",
    "SpaceScore",
    "score_space",
    "to_ekman",
    "to_sentiment",
]

EKMAN_CLASSES: tuple[str, ...] = tuple(EKMAN)
SENTIMENT_CLASSES: tuple[str, ...] = ("positive", "negative", "ambiguous", "neutral")


@dataclass(frozen=True, slots=True)
class ClassScore:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class SpaceScore:
    """Scores over one label space; `per_class` in the space's class order."""

    space: str
    macro_f1: float
    micro_f1: float
    weighted_f1: float
    per_class: tuple[ClassScore, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "macro_f1": self.macro_f1,
            "micro_f1": self.micro_f1,
            "weighted_f1": self.weighted_f1,
            "per_class": {
                c.label: {
                    "precision": c.precision,
                    "recall": c.recall,
                    "f1": c.f1,
                    "support": c.support,
                }
                for c in self.per_class
            },
        }


def to_ekman(labels: Iterable[str]) -> frozenset[str]:
    return frozenset(EKMAN_OF[label] for label in labels)


def to_sentiment(labels: Iterable[str]) -> frozenset[str]:
    return frozenset(SENTIMENT_OF[label] for label in labels)


def _f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def score_space(
    space: str,
    gold: Sequence[Collection[str]],
    predicted: Sequence[Collection[str]],
    classes: Sequence[str] = LABELS,
) -> SpaceScore:
    """Per-class, macro, micro and support-weighted F1 of label sets over `classes`."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold label sets but {len(predicted)} predictions")
    counts: Mapping[str, list[int]] = {label: [0, 0, 0] for label in classes}  # tp, fp, fn
    for truth, guess in zip(gold, predicted, strict=True):
        for label in classes:
            in_truth, in_guess = label in truth, label in guess
            if in_truth and in_guess:
                counts[label][0] += 1
            elif in_guess:
                counts[label][1] += 1
            elif in_truth:
                counts[label][2] += 1
    per_class = []
    for label in classes:
        tp, fp, fn = counts[label]
        precision, recall, f1 = _f1(tp, fp, fn)
        per_class.append(ClassScore(label, precision, recall, f1, support=tp + fn))
    total_support = sum(c.support for c in per_class)
    tp, fp, fn = (sum(c[i] for c in counts.values()) for i in range(3))
    return SpaceScore(
        space=space,
        macro_f1=sum(c.f1 for c in per_class) / len(per_class),
        micro_f1=_f1(tp, fp, fn)[2],
        weighted_f1=(
            sum(c.f1 * c.support for c in per_class) / total_support if total_support else 0.0
        ),
        per_class=tuple(per_class),
    )
