"""The events of a turn: the user's message, what the worker makes of it, the reply.

They travel on a session's turn, reply, feedback and cancel topics (`agent.topics`).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import AfterValidator, ConfigDict, Field
from pydantic.dataclasses import dataclass

from agent.emotion.labels import LABELS
from agent.values import Decision, EmotionReading

__all__ = [
    "EVENT_VERSION",
    "MAX_TEXT_CHARS",
    "STRICT",
    "AgentName",
    "Cancel",
    "DecisionMade",
    "EmotionRead",
    "Feedback",
    "Handoff",
    "Id",
    "ReplyDelta",
    "ReplyEnded",
    "ReplyStarted",
    "Tenant",
    "Text",
    "TurnFailed",
    "UserId",
    "UserTurn",
    "Version",
]

EVENT_VERSION: Final = 1
MAX_TEXT_CHARS = 16_000

STRICT = ConfigDict(extra="forbid", strict=True)

# Ids end up in MQTT topic levels, so they may not contain '/', '+' or '#'.
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
UserId = Annotated[str, Field(min_length=1, max_length=128)]
Tenant = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
# A person who speaks for the service: a human agent taking a session over.
AgentName = Annotated[str, Field(min_length=1, max_length=128)]
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
Millis = Annotated[float, Field(ge=0.0)]
Version = Literal[1]


def _known_labels(signals: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(signals) - set(LABELS))
    if unknown:
        raise ValueError(f"not GoEmotions labels: {unknown}")
    return signals


Signals = Annotated[
    dict[str, Annotated[float, Field(ge=0.0, le=1.0)]],
    Field(min_length=1, max_length=len(LABELS)),
    AfterValidator(_known_labels),
]


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class UserTurn:
    """A user's message, numbered by the gateway within its session (`seq` from 1).

    `signals` are emotion scores per GoEmotions label that the client measured
    itself (a voice or face model); the pipeline fuses them with the text
    reading (`agent.emotion.fusion`). `human_agent` names the person who has
    taken the session over: the worker reads and keeps the turn, and the bot
    does not answer it.
    """

    type: Literal["user_turn"] = "user_turn"
    v: Version = EVENT_VERSION
    session_id: Id
    user_id: UserId
    turn_id: Id
    seq: Annotated[int, Field(ge=1)]
    text: Text
    sent_at: float
    signals: Signals | None = None
    tenant: Tenant = "default"
    human_agent: AgentName | None = None


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class EmotionRead:
    type: Literal["emotion_read"] = "emotion_read"
    v: Version = EVENT_VERSION
    session_id: Id
    turn_id: Id
    reading: EmotionReading


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class DecisionMade:
    type: Literal["decision"] = "decision"
    v: Version = EVENT_VERSION
    session_id: Id
    turn_id: Id
    decision: Decision


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class ReplyStarted:
    type: Literal["reply_started"] = "reply_started"
    v: Version = EVENT_VERSION
    session_id: Id
    turn_id: Id
    generator: str


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class ReplyDelta:
    type: Literal["reply_delta"] = "reply_delta"
    v: Version = EVENT_VERSION
    session_id: Id
    turn_id: Id
    seq: Annotated[int, Field(ge=0)]
    text: Text


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class ReplyEnded:
    """The reply is over: its full text, whether barge-in cut it, and its timings.

    `stages` holds the milliseconds each pipeline stage took, for benchmarks
    and dashboards.
    """

    type: Literal["reply_ended"] = "reply_ended"
    v: Version = EVENT_VERSION
    session_id: Id
    turn_id: Id
    text: Text
    interrupted: bool
    generator: str
    ttft_ms: Millis
    total_ms: Millis
    stages: dict[str, Millis] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class Handoff:
    type: Literal["handoff"] = "handoff"
    v: Version = EVENT_VERSION
    session_id: Id
    turn_id: Id
    reason: Annotated[str, Field(max_length=500)]


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class TurnFailed:
    """A turn could not be answered; `code` is stable and safe to show a client."""

    type: Literal["turn_failed"] = "turn_failed"
    v: Version = EVENT_VERSION
    session_id: Id
    turn_id: Id
    code: Annotated[str, Field(max_length=64)]
    message: Annotated[str, Field(max_length=500)]


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class Feedback:
    """The user's rating of one reply: 1 (worst) to 5 (best); thumbs are 1 and 5."""

    type: Literal["feedback"] = "feedback"
    v: Version = EVENT_VERSION
    session_id: Id
    user_id: UserId
    turn_id: Id
    score: Annotated[int, Field(ge=1, le=5)]
    tenant: Tenant = "default"


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class Cancel:
    """Stop the reply to `turn_id`, streaming or not yet started.

    `reason`: the user sent a new message (barge-in), the client asked (or went
    away), or a person took the session over.
    """

    type: Literal["cancel"] = "cancel"
    v: Version = EVENT_VERSION
    session_id: Id
    turn_id: Id
    reason: Literal["barge_in", "client", "takeover"]
