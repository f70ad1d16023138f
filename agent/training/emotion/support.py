"""`heartline eval emotion --format support`: the support set, scored per language.

Each message has a set of gold Ekman groups, the first its main one. Per
language the report gives:

- accuracy: a message counts as right when the Ekman group of the reading's
  dominant label is one of its gold groups;
- macro-F1 over the 7 Ekman groups, the predicted set being the groups of the
  reading's present labels (`EmotionReading.present`);
- a confusion matrix of the main gold group against the dominant label's group.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.emotion.base import EmotionModel
from agent.emotion.labels import EKMAN_OF
from agent.language import Language
from agent.training.emotion.confusion import Matrix, count_pairs
from agent.training.emotion.datasets import DataFormat, Dataset
from agent.training.emotion.evaluate import predict_all, score_lines
from agent.training.emotion.scoring import EKMAN_CLASSES, SpaceScore, score_space, to_ekman
from agent.values import EmotionReading

__all__ = [
    "ACCURACY_RULE",
    "F1_RULE",
    "SUPPORT_SET",
    "LanguageScore",
    "SupportEvaluation",
    "evaluate_support",
    "score_language",
]

# Where the shipped support set installs (package data of agent.emotion).
SUPPORT_SET = Path(__file__).parents[2] / "emotion" / "data" / "support" / "eval.tsv"
ACCURACY_RULE = "the Ekman group of the reading's dominant label is one of the message's labels"
F1_RULE = "over the 7 Ekman groups; predicted: the groups of the reading's present labels"


@dataclass(frozen=True, slots=True)
class LanguageScore:
    """One language's messages as one model read them.

    `confusion` counts rows by the message's first label and columns by the
    dominant label's group, both in `EKMAN_CLASSES` order. `confusion_png` is
    where it was drawn, once it has been.
    """

    language: Language
    model: str
    messages: int
    accuracy: float
    groups: SpaceScore
    confusion: Matrix
    confusion_png: Path | None = None

    def summary(self) -> dict[str, object]:
        result: dict[str, object] = {
            "model": self.model,
            "messages": self.messages,
            "accuracy": self.accuracy,
            "macro_f1": self.groups.macro_f1,
            "ekman": self.groups.as_dict(),
        }
        if self.confusion_png is not None:
            result["confusion_png"] = str(self.confusion_png)
        return result

    def lines(self) -> list[str]:
        lines = [
            f"{self.language} ({self.model}): {self.messages} messages, "
            f"accuracy {self.accuracy:.4f}, macro-F1 {self.groups.macro_f1:.4f}",
            *score_lines("  ekman", self.groups),
        ]
        if self.confusion_png is not None:
            lines.append(f"  Confusion matrix ({self.language}): {self.confusion_png}")
        return lines


@dataclass(frozen=True, slots=True)
class SupportEvaluation:
    """Every language of the support set, in the order they first appear in it."""

    data: Path
    seconds: float
    languages: tuple[LanguageScore, ...]

    def summary(self) -> dict[str, object]:
        return {
            "format": DataFormat.SUPPORT.value,
            "data": str(self.data),
            "seconds": round(self.seconds, 2),
            "accuracy_rule": ACCURACY_RULE,
            "f1_rule": F1_RULE,
            "languages": {score.language: score.summary() for score in self.languages},
        }

    def lines(self) -> list[str]:
        messages = sum(score.messages for score in self.languages)
        lines = [
            f"support set {self.data}: {messages} messages in {self.seconds:.1f} s",
            f"  accuracy: {ACCURACY_RULE}",
            f"  macro-F1: {F1_RULE}",
        ]
        for score in self.languages:
            lines += ["", *score.lines()]
        return lines


def score_language(
    language: Language, gold: Sequence[Sequence[str]], readings: Sequence[EmotionReading]
) -> LanguageScore:
    """Score one language's readings against its messages' gold groups (first: the main one)."""
    if len(gold) != len(readings) or not gold:
        raise ValueError(f"{len(gold)} gold label sets for {len(readings)} readings")
    dominant = [EKMAN_OF[reading.dominant] for reading in readings]
    right = sum(group in labels for group, labels in zip(dominant, gold, strict=True))
    predicted = [to_ekman(reading.present()) for reading in readings]
    return LanguageScore(
        language=language,
        model=readings[0].model,
        messages=len(gold),
        accuracy=right / len(gold),
        groups=score_space("ekman", gold, predicted, EKMAN_CLASSES),
        confusion=count_pairs(
            [(labels[0], group) for labels, group in zip(gold, dominant, strict=True)],
            EKMAN_CLASSES,
        ),
    )


def evaluate_support(
    data: Path,
    dataset: Dataset,
    models: Mapping[Language, EmotionModel],
    *,
    progress: bool = True,
) -> SupportEvaluation:
    """Read each language's messages with that language's model and score them."""
    started = time.perf_counter()
    scores = []
    for language in dataset.languages:
        examples = dataset.in_language(language).examples
        readings = predict_all(models[language], [e.text for e in examples], progress=progress)
        scores.append(score_language(language, [e.labels for e in examples], readings))
    return SupportEvaluation(
        data=data, seconds=time.perf_counter() - started, languages=tuple(scores)
    )
