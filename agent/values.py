"""Value types shared by the runtime, the policies and memory.

Kept small and free of runtime imports: `policies` and `memory` depend on this
module, never on the bus, gateway or models. Every type is frozen and validated
on construction, so a bad reading or decision fails where it is made.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

__all__ = [
    "Action",
    "ConversationMood",
    "Decision",
    "EmotionReading",
    "Exchange",
    "HistorySummary",
    "SessionMood",
    "Strategy",
    "Tone",
    "Trajectory",
    "Trend",
    "TurnContext",
]

_STRICT = ConfigDict(extra="forbid", strict=True)

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Signed = Annotated[float, Field(ge=-1.0, le=1.0)]
Label = Annotated[str, Field(min_length=1, max_length=64)]
FlowState = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]


class Action(StrEnum):
    REPLY = "reply"
    HANDOFF = "handoff"
    END = "end"


class Strategy(StrEnum):
    EMPATHIZE = "empathize"
    APOLOGIZE = "apologize"
    REASSURE = "reassure"
    INFORM = "inform"
    CLARIFY = "clarify"
    ENCOURAGE = "encourage"
    CELEBRATE = "celebrate"
    DE_ESCALATE = "de-escalate"


class Tone(StrEnum):
    WARM = "warm"
    CALM = "calm"
    NEUTRAL = "neutral"
    UPBEAT = "upbeat"


class Trend(StrEnum):
    UNKNOWN = "unknown"
    DETERIORATING = "deteriorating"
    STABLE = "stable"
    RECOVERING = "recovering"


class Trajectory(StrEnum):
    """Where the conversation's mood is heading; `agent.emotion.conversation` has the rules."""

    STEADY = "steady"
    ESCALATING = "escalating"
    CALMING = "calming"
    BRIGHTENING = "brightening"
    VOLATILE = "volatile"


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class EmotionReading:
    """One reading of a text: the full distribution plus its summaries.

    `scores` maps each label of the fine label space to a probability;
    `dominant` is the label the reading stands for; `labels` are the labels
    the model judged present (its multi-label decision), when it makes one;
    `groups` are the Ekman-7 groups it judged present, when it decides those
    itself rather than leaving them to follow from `labels`.
    """

    scores: dict[Label, Unit]
    dominant: Label
    valence: Signed
    arousal: Unit
    intensity: Unit
    model: Annotated[str, Field(min_length=1, max_length=128)]
    labels: tuple[Label, ...] = ()
    groups: tuple[Label, ...] = ()

    def __post_init__(self) -> None:
        if self.dominant not in self.scores:
            raise ValueError(f"dominant label {self.dominant!r} has no score")
        if not all(math.isfinite(v) for v in self.scores.values()):
            raise ValueError("scores must be finite")
        if any(label not in self.scores for label in self.labels):
            raise ValueError("every present label needs a score")

    def present(self) -> tuple[str, ...]:
        """The labels judged present: the model's decision, else the dominant one."""
        return self.labels or (self.dominant,)

    def score(self, label: str) -> float:
        return self.scores.get(label, 0.0)


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class ConversationMood:
    """The conversation's emotional state so far, smoothed over its turns.

    It lives here, not beside its update rule, because `TurnContext` carries
    it to the policies. `scores`, `valence`, `arousal` and `intensity` are
    exponential moving averages of the per-turn readings; `recent_valence`
    and `recent_anger` are the last few raw per-turn values the trajectory
    is judged on. `agent.emotion.conversation.update_mood` makes the next one.
    """

    turns: Annotated[int, Field(ge=0)] = 0
    scores: dict[Label, Unit] = Field(default_factory=lambda: {"neutral": 1.0})
    dominant: Label = "neutral"
    valence: Signed = 0.0
    arousal: Unit = 0.0
    intensity: Unit = 0.0
    trajectory: Trajectory = Trajectory.STEADY
    recent_valence: tuple[Signed, ...] = ()
    recent_anger: tuple[Unit, ...] = ()

    def __post_init__(self) -> None:
        if self.dominant not in self.scores:
            raise ValueError(f"dominant label {self.dominant!r} has no score")
        if len(self.recent_valence) != len(self.recent_anger):
            raise ValueError("recent_valence and recent_anger must be the same length")


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class Decision:
    """What to do with a turn, who decided it and why.

    `propensity` is the probability with which a learned policy chose this
    strategy; it is what off-policy evaluation needs later. Rule decisions
    leave it None. `abstained` names the policies of an ensemble that had
    nothing to say about this turn.
    """

    action: Action
    strategy: Strategy
    tone: Tone
    confidence: Unit
    policy: Annotated[str, Field(min_length=1, max_length=64)]
    reasons: tuple[Annotated[str, Field(max_length=500)], ...] = ()
    propensity: Unit | None = None
    abstained: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class Exchange:
    """One earlier turn of this conversation: what the user said and what we did."""

    text: str
    reply: str
    emotion: EmotionReading | None = None
    strategy: Strategy | None = None
    flow_state: FlowState | None = None


# How a reason names a session whose turns leaned to an Ekman group.
_MOOD_WORDS = {
    "anger": "frustrated",
    "disgust": "disgusted",
    "fear": "anxious",
    "joy": "happy",
    "sadness": "sad",
    "surprise": "surprised",
    "neutral": "calm",
}


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class SessionMood:
    """One earlier session's mood, so a reason can say "frustrated in the last 2 sessions".

    `mood` is an Ekman group: the most frequent non-neutral one when it was the
    dominant emotion of at least a third of the session's turns, else neutral.
    """

    turns: Annotated[int, Field(ge=1)]
    mood: Label
    mean_valence: Signed
    ended_at: float

    def word(self) -> str:
        return _MOOD_WORDS.get(self.mood, self.mood)


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class HistorySummary:
    """The user's emotional history in a form a rule or a prompt can use.

    `mean_valence`, `mean_arousal` and `frequent` are the long-run baseline
    over every stored turn; `trajectory` is the valence of the user's last
    turns across sessions, oldest first, and `trend` what it shows;
    `past_sessions` are the latest earlier sessions, newest first.
    """

    returning: bool
    sessions: Annotated[int, Field(ge=0)]
    turns: Annotated[int, Field(ge=0)]
    mean_valence: Signed | None = None
    mean_arousal: Unit | None = None
    frequent: tuple[Label, ...] = ()
    recent_dominant: tuple[Label, ...] = ()
    trajectory: tuple[Signed, ...] = ()
    trend: Trend = Trend.UNKNOWN
    past_sessions: tuple[SessionMood, ...] = ()

    @classmethod
    def first_time(cls) -> HistorySummary:
        return cls(returning=False, sessions=0, turns=0)

    def mood_streak(self) -> tuple[str, int]:
        """The mood of the latest earlier session and how many in a row before now shared it."""
        if not self.past_sessions:
            return "neutral", 0
        mood = self.past_sessions[0].mood
        count = 0
        for session in self.past_sessions:
            if session.mood != mood:
                break
            count += 1
        return mood, count

    def describe(self) -> str:
        """One line for a reason or a prompt, e.g. "frustrated in the last 2 sessions"."""
        if not self.returning:
            return "first-time user"
        parts = [
            f"returning user ({_plural(self.sessions, 'session')}, {_plural(self.turns, 'turn')})"
        ]
        mood, streak = self.mood_streak()
        if streak and mood != "neutral":
            where = "the last session" if streak == 1 else f"the last {streak} sessions"
            parts.append(f"{_MOOD_WORDS.get(mood, mood)} in {where}")
        if self.trend in (Trend.DETERIORATING, Trend.RECOVERING):
            parts.append(f"mood {self.trend.value}")
        if self.mean_valence is not None:
            parts.append(f"usual valence {self.mean_valence:+.2f}")
        return ", ".join(parts)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class TurnContext:
    """Everything a policy may look at to decide one turn. Time comes in as `now`.

    `emotion` is this turn's reading; `mood` is the conversation's, this turn
    included (neutral and steady when a caller does not track one);
    `flow_state` the conversation flow's state after this turn's transition
    (None without a flow).
    """

    text: str
    emotion: EmotionReading
    history: HistorySummary
    conversation: tuple[Exchange, ...] = ()
    mood: ConversationMood = Field(default_factory=ConversationMood)
    now: float = 0.0
    flow_state: FlowState | None = None
