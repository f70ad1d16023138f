"""What a declarative rule can test about a turn: small, pure, explainable conditions.

Each condition is a frozen value with `holds(context)`; an emotion condition
also reports the score it measured, so a rule's reason can cite the number.
`policies.rule_files` builds them from YAML.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from agent.emotion.labels import EKMAN, LABELS, any_present
from agent.values import EmotionReading, Trajectory, Trend, TurnContext

__all__ = [
    "AllOf",
    "AnyOf",
    "Condition",
    "EmotionAtLeast",
    "HourBetween",
    "Matches",
    "MoodStreak",
    "Not",
    "Numeric",
    "Returning",
    "TrajectoryIs",
    "TrendIs",
    "TurnCount",
    "expand_labels",
]


class Condition(Protocol):
    def holds(self, context: TurnContext) -> bool: ...


def expand_labels(names: Sequence[str]) -> tuple[str, ...]:
    """Fine labels for a list of fine labels and Ekman group names.

    A name that is both ("anger", "joy", ...) means the whole group. Raises
    ValueError with the name that is neither.
    """
    labels: list[str] = []
    for name in names:
        if name in EKMAN:
            labels.extend(EKMAN[name])
        elif name in LABELS:
            labels.append(name)
        else:
            raise ValueError(name)
    return tuple(dict.fromkeys(labels))


def _score(reading: EmotionReading, labels: Sequence[str]) -> float:
    """The chance that at least one of `labels` is present (`any_present`)."""
    return any_present(reading.scores, labels)


@dataclass(frozen=True, slots=True)
class EmotionAtLeast:
    """The score of `labels` (noisy-or) reaches `threshold` (and, with `over`, at least
    the score of those labels) on this turn and the `turns - 1` before it."""

    labels: tuple[str, ...]
    threshold: float
    over: tuple[str, ...] = ()
    turns: int = 1

    def score(self, context: TurnContext) -> float:
        return _score(context.emotion, self.labels)

    def holds(self, context: TurnContext) -> bool:
        if not self._reaches(context.emotion):
            return False
        if self.turns == 1:
            return True
        earlier = [e.emotion for e in context.conversation[-(self.turns - 1) :]]
        if len(earlier) < self.turns - 1:
            return False
        return all(r is not None and self._reaches(r) for r in earlier)

    def _reaches(self, reading: EmotionReading) -> bool:
        score = _score(reading, self.labels)
        return score >= self.threshold and (not self.over or score >= _score(reading, self.over))


@dataclass(frozen=True, slots=True)
class Numeric:
    """A number of the reading (valence, arousal, intensity) within bounds."""

    field: str
    at_least: float | None = None
    below: float | None = None

    def holds(self, context: TurnContext) -> bool:
        value = float(getattr(context.emotion, self.field))
        return (self.at_least is None or value >= self.at_least) and (
            self.below is None or value < self.below
        )


@dataclass(frozen=True, slots=True)
class Matches:
    """The user's text matches a regular expression (case-insensitive)."""

    pattern: re.Pattern[str]

    def holds(self, context: TurnContext) -> bool:
        return self.pattern.search(context.text) is not None


@dataclass(frozen=True, slots=True)
class TrajectoryIs:
    trajectories: frozenset[Trajectory]

    def holds(self, context: TurnContext) -> bool:
        return context.mood.trajectory in self.trajectories


@dataclass(frozen=True, slots=True)
class TrendIs:
    trends: frozenset[Trend]

    def holds(self, context: TurnContext) -> bool:
        return context.history.trend in self.trends


@dataclass(frozen=True, slots=True)
class Returning:
    returning: bool

    def holds(self, context: TurnContext) -> bool:
        return context.history.returning is self.returning


@dataclass(frozen=True, slots=True)
class MoodStreak:
    """The user's latest `at_least` earlier sessions in a row had this mood (an Ekman group)."""

    mood: str
    at_least: int

    def streak(self, context: TurnContext) -> int:
        latest, count = context.history.mood_streak()
        return count if latest == self.mood else 0

    def holds(self, context: TurnContext) -> bool:
        return self.streak(context) >= self.at_least


@dataclass(frozen=True, slots=True)
class TurnCount:
    """This turn's number in the conversation (the first turn is 1)."""

    at_least: int | None = None
    at_most: int | None = None

    def holds(self, context: TurnContext) -> bool:
        number = len(context.conversation) + 1
        return (self.at_least is None or number >= self.at_least) and (
            self.at_most is None or number <= self.at_most
        )


@dataclass(frozen=True, slots=True)
class HourBetween:
    """The turn's UTC hour lies in [start, end) (wrapping past midnight when start > end)."""

    start: int
    end: int

    def holds(self, context: TurnContext) -> bool:
        hour = datetime.fromtimestamp(context.now, UTC).hour
        if self.start <= self.end:
            return self.start <= hour < self.end
        return hour >= self.start or hour < self.end


@dataclass(frozen=True, slots=True)
class AllOf:
    conditions: tuple[Condition, ...]

    def holds(self, context: TurnContext) -> bool:
        return all(c.holds(context) for c in self.conditions)


@dataclass(frozen=True, slots=True)
class AnyOf:
    conditions: tuple[Condition, ...]

    def holds(self, context: TurnContext) -> bool:
        return any(c.holds(context) for c in self.conditions)


@dataclass(frozen=True, slots=True)
class Not:
    condition: Condition

    def holds(self, context: TurnContext) -> bool:
        return not self.condition.holds(context)
