"""Events between gateways and workers that are not a session's: presence and emotion requests.

* Each worker says it is alive on its own presence topic twice a second
  (`WorkerBeat`); gateways count a worker as available while its beats keep coming,
  and the other workers take its claimed turns over soon after they stop.
* A gateway asks the workers to read texts (`EmotionRequest`, one worker of the group
  takes it) and gets the readings back on its own result topic (`EmotionResult`).
* A gateway asks the workers about a session a client resumes (`SessionLookup`): its
  last turns answered and those still unfinished come back (`SessionFound`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from agent.events.turns import (
    EVENT_VERSION,
    STRICT,
    Id,
    ReplyEnded,
    Tenant,
    Text,
    UserId,
    UserTurn,
    Version,
)
from agent.values import EmotionReading

__all__ = [
    "MAX_EMOTION_TEXTS",
    "MAX_RESUMED_TURNS",
    "EmotionRequest",
    "EmotionResult",
    "SessionFound",
    "SessionLookup",
    "WorkerBeat",
]

MAX_EMOTION_TEXTS = 256
MAX_RESUMED_TURNS = 32
"""Answered turns a resumed session brings back: the newest; older ones are not resent."""


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class WorkerBeat:
    """A worker is there (`ready`), or is leaving (`ready` false, its last beat)."""

    type: Literal["worker_beat"] = "worker_beat"
    v: Version = EVENT_VERSION
    worker_id: Annotated[str, Field(min_length=1, max_length=128)]
    ready: bool
    at: float


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class EmotionRequest:
    type: Literal["emotion_request"] = "emotion_request"
    v: Version = EVENT_VERSION
    request_id: Id
    reply_to: Id
    texts: Annotated[tuple[Text, ...], Field(min_length=1, max_length=MAX_EMOTION_TEXTS)]


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class EmotionResult:
    """The readings of a request's texts, in order; or why there are none (`error`)."""

    type: Literal["emotion_result"] = "emotion_result"
    v: Version = EVENT_VERSION
    request_id: Id
    readings: tuple[EmotionReading, ...] = ()
    error: Annotated[str, Field(max_length=500)] | None = None


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class SessionLookup:
    """Which turns of `session_id`, if it is `user_id`'s in `tenant`, were answered and
    which are still unfinished."""

    type: Literal["session_lookup"] = "session_lookup"
    v: Version = EVENT_VERSION
    request_id: Id
    reply_to: Id
    session_id: Id
    user_id: UserId
    tenant: Tenant


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class SessionFound:
    """What a worker knows of a looked-up session: nothing (`found` false: unknown, or
    another user's), or its last turn number, newest answered turns and unfinished ones."""

    type: Literal["session_found"] = "session_found"
    v: Version = EVENT_VERSION
    request_id: Id
    session_id: Id
    found: bool
    last_seq: Annotated[int, Field(ge=0)] = 0
    answered: Annotated[tuple[ReplyEnded, ...], Field(max_length=MAX_RESUMED_TURNS)] = ()
    unfinished: Annotated[tuple[UserTurn, ...], Field(max_length=MAX_RESUMED_TURNS)] = ()
