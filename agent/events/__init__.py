"""Typed, versioned events and their strict JSON codec.

Every event carries `type` (which class) and `v` (the schema version). `decode`
accepts exactly the current version of a known type with no unknown or missing
fields and raises `EventDecodeError` for anything else, so a consumer can drop a
bad payload and carry on.

The events live by domain: a turn's (`turns`), the people around a session's
(`operations`), and the services' (`services`).
"""

from __future__ import annotations

import functools
from typing import Annotated

from pydantic import Field, TypeAdapter, ValidationError

from agent.errors import EventDecodeError
from agent.events.operations import (
    AgentMessage,
    Channel,
    HandoffRequested,
    HandoffTrigger,
    SessionClosed,
    SessionOpened,
    Takeover,
    TurnSummary,
)
from agent.events.services import (
    MAX_EMOTION_TEXTS,
    MAX_RESUMED_TURNS,
    EmotionRequest,
    EmotionResult,
    SessionFound,
    SessionLookup,
    WorkerBeat,
)
from agent.events.turns import (
    EVENT_VERSION,
    MAX_TEXT_CHARS,
    Cancel,
    DecisionMade,
    EmotionRead,
    Feedback,
    Handoff,
    ReplyDelta,
    ReplyEnded,
    ReplyStarted,
    TurnFailed,
    UserTurn,
)

__all__ = [
    "EVENT_VERSION",
    "MAX_EMOTION_TEXTS",
    "MAX_RESUMED_TURNS",
    "MAX_TEXT_CHARS",
    "AgentMessage",
    "Cancel",
    "Channel",
    "DecisionMade",
    "EmotionRead",
    "EmotionRequest",
    "EmotionResult",
    "Event",
    "Feedback",
    "Handoff",
    "HandoffRequested",
    "HandoffTrigger",
    "ReplyDelta",
    "ReplyEnded",
    "ReplyStarted",
    "SessionClosed",
    "SessionFound",
    "SessionLookup",
    "SessionOpened",
    "Takeover",
    "TurnFailed",
    "TurnSummary",
    "UserTurn",
    "WorkerBeat",
    "decode",
    "encode",
]

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
    | SessionOpened
    | TurnSummary
    | SessionClosed
    | Takeover
    | AgentMessage
    | HandoffRequested
    | WorkerBeat
    | EmotionRequest
    | EmotionResult
    | SessionLookup
    | SessionFound
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
