"""Conversation-level reading: one turn's reading folded into the conversation's mood.

Pure: readings in, `ConversationMood` out. The value type lives in
`agent.values` (policies see it through `TurnContext`); this module holds
the rules.

Smoothing: an exponential moving average with `alpha` = 0.5 by default,
``m_t = alpha * x_t + (1 - alpha) * m_(t-1)``, over the label distribution
(scores normalised to sum to 1) and over valence, arousal and intensity. At
0.5 a turn's weight halves with every later turn, so the mood follows a
change within two or three turns and forgets a turn after about five. The
first reading is taken as it is, so the neutral start does not dilute it.

Trajectory: judged on the raw values of the last `WINDOW` (4) turns, from the
first of them to the last, by the first rule that holds:

1. volatile — valence swung by at least 0.5 in both directions (three turns at least);
2. escalating — anger (anger, annoyance, disapproval, disgust) rose by at least
   0.2 to at least 0.3, or valence fell by at least 0.25 to below 0;
3. calming — anger fell by at least 0.2, or valence rose by at least 0.25 from
   below 0 (recovering);
4. brightening — valence rose by at least 0.25 from 0 or above;
5. steady — otherwise, and always with fewer than two turns.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

from agent.emotion.fusion import as_distribution
from agent.emotion.labels import LABELS
from agent.values import ConversationMood, EmotionReading, Trajectory

__all__ = [
    "ALPHA",
    "ANGER_LABELS",
    "WINDOW",
    "ConversationMood",
    "Trajectory",
    "replay_mood",
    "trajectory_of",
    "update_mood",
]

ALPHA = 0.5
WINDOW = 4
ANGER_LABELS: tuple[str, ...] = ("anger", "annoyance", "disapproval", "disgust")

_SWING = 0.5
_ANGER_RISE = 0.2
_ANGER_LEVEL = 0.3
_VALENCE_SHIFT = 0.25


def update_mood(
    mood: ConversationMood, reading: EmotionReading, *, alpha: float = ALPHA
) -> ConversationMood:
    """The mood after one more turn read as `reading`."""
    if not 0.0 < alpha <= 1.0:
        raise ValueError("alpha must be in (0, 1]")
    current = as_distribution(reading.scores)
    keep = 0.0 if mood.turns == 0 else 1.0 - alpha
    take = 1.0 - keep
    scores = {
        label: min(1.0, take * current[label] + keep * mood.scores.get(label, 0.0))
        for label in LABELS
    }
    recent_valence = (*mood.recent_valence, reading.valence)[-WINDOW:]
    recent_anger = (*mood.recent_anger, sum(current[label] for label in ANGER_LABELS))[-WINDOW:]
    return ConversationMood(
        turns=mood.turns + 1,
        scores=scores,
        dominant=max(scores, key=lambda label: scores[label]),
        valence=_clamp(take * reading.valence + keep * mood.valence, -1.0),
        arousal=_clamp(take * reading.arousal + keep * mood.arousal, 0.0),
        intensity=_clamp(take * reading.intensity + keep * mood.intensity, 0.0),
        trajectory=trajectory_of(recent_valence, recent_anger),
        recent_valence=recent_valence,
        recent_anger=tuple(min(1.0, a) for a in recent_anger),
    )


def replay_mood(readings: Iterable[EmotionReading], *, alpha: float = ALPHA) -> ConversationMood:
    """The mood of a conversation rebuilt from its readings, oldest first."""
    mood = ConversationMood()
    for reading in readings:
        mood = update_mood(mood, reading, alpha=alpha)
    return mood


def trajectory_of(valence: tuple[float, ...], anger: tuple[float, ...]) -> Trajectory:
    """The trajectory of per-turn valence and anger, oldest first (rules in the docstring)."""
    if len(valence) < 2:
        return Trajectory.STEADY
    steps = [after - before for before, after in pairwise(valence)]
    if max(steps) >= _SWING and min(steps) <= -_SWING:
        return Trajectory.VOLATILE
    anger_change = anger[-1] - anger[0]
    valence_change = valence[-1] - valence[0]
    if (anger_change >= _ANGER_RISE and anger[-1] >= _ANGER_LEVEL) or (
        valence_change <= -_VALENCE_SHIFT and valence[-1] < 0.0
    ):
        return Trajectory.ESCALATING
    if anger_change <= -_ANGER_RISE or (valence_change >= _VALENCE_SHIFT and valence[0] < 0.0):
        return Trajectory.CALMING
    if valence_change >= _VALENCE_SHIFT:
        return Trajectory.BRIGHTENING
    return Trajectory.STEADY


def _clamp(value: float, low: float) -> float:
    return max(low, min(1.0, value))
