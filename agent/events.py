"""Typed, versioned events and their strict JSON codec.

Every event carries `type` (which class) and `v` (the schema version). `decode`
accepts exactly the current version of a known type with no unknown or missing
fields and raises `EventDecodeError` for anything else, so a consumer can drop a
bad payload and carry on.
"""

from __future__ import annotations

import functools
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from agent.emotion.labels import LABELS
from agent.errors import EventDecodeError
from agent.values import Decision, EmotionReading

__all__ = [
    "EVENT_VERSION",
    "Cancel",
    "DecisionMade",
    "EmotionRead",
    "Event",
    "Feedback",
    "Handoff",
    "ReplyDelta",
    "ReplyEnded",
    "ReplyStarted",
    "TurnFailed",
    "UserTurn",
    "decode",
    "encode",
]

EVENT_VERSION: Final = 1
MAX_TEXT_CHARS = 16_000

_STRICT = ConfigDict(extra="forbid", strict=True)

# Ids end up in MQTT topic levels, so they may not contain '/', '+' or '#'.
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
UserId = Annotated[str, Field(min_length=1, max_length=128)]
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


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class UserTurn:
    """A user's message, numbered by the gateway within its session (`seq` from 1).

    `signals` are emotion scores per GoEmotions label that the client measured
    itself (a voice or face model); the pipeline fuses them with the text
    reading (`agent.emotion.fusion`).
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


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class EmotionRead:
    type: Literal["emotion_read"] = "emotion_read"
    v: Version = EVENT_VERSION
    session_id: Id
    turn_id: Id
    reading: EmotionReading


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class DecisionMade:
    type: Literal["decision"] = "decision"
    v: Version = EVENT_VERSION
    session_id: Id
    turn_id: Id
    decision: Decision


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class ReplyStarted:
    type: Literal["reply_started"] = "reply_started"
    v: Version = EVENT_VERSION
    session_id: Id
    turn_id: Id
    generator: str


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class ReplyDelta:
    type: Literal["reply_delta"] = "reply_delta"
    v: Version = EVENT_VERSION
    session_id: Id
    turn_id: Id
    seq: Annotated[int, Field(ge=0)]
    text: Text


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
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


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class Handoff:
    type: Literal["handoff"] = "handoff"
    v: Version = EVENT_VERSION
    session_id: Id
    turn_id: Id
    reason: Annotated[str, Field(max_length=500)]


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class TurnFailed:
    """A turn could not be answered; `code` is stable and safe to show a client."""

    type: Literal["turn_failed"] = "turn_failed"
    v: Version = EVENT_VERSION
    session_id: Id
    turn_id: Id
    code: Annotated[str, Field(max_length=64)]
    message: Annotated[str, Field(max_length=500)]


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class Feedback:
    """The user's rating of one reply: 1 (worst) to 5 (best); thumbs are 1 and 5."""

    type: Literal["feedback"] = "feedback"
    v: Version = EVENT_VERSION
    session_id: Id
    user_id: UserId
    turn_id: Id
    score: Annotated[int, Field(ge=1, le=5)]


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class Cancel:
    """Stop the reply to `turn_id`, streaming or not yet started."""

    type: Literal["cancel"] = "cancel"
    v: Version = EVENT_VERSION
    session_id: Id
    turn_id: Id
    reason: Literal["barge_in", "client"]


Event = (
    UserTurn
    | EmotionRead
    | DecisionMade
    | ReplyStarted
    | ReplyDelta
    | ReplyEnded
    | Handoff
    | TurnFailed
    | Feedback
    | Cancel
)


@functools.cache
def _adapter() -> TypeAdapter[Event]:
    return TypeAdapter(Annotated[Event, Field(discriminator="type")])


def encode(event: Event) -> bytes:
    """Serialise an event to compact JSON."""
    return _adapter().dump_json(event)


def decode(payload: bytes | str) -> Event:
    """Parse and validate one event; raise `EventDecodeError` on anything invalid."""
    try:
        return _adapter().validate_json(payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "payload"
        raise EventDecodeError(f"invalid event at {where}: {first['msg']}") from exc
