"""Events between gateways and workers that are not a session's: presence and emotion requests.

* Each worker says it is alive on its own presence topic twice a second
  (`WorkerBeat`); gateways count a worker as available while its beats keep coming,
  and the other workers take its claimed turns over soon after they stop.
* A gateway asks the workers to read texts (`EmotionRequest`, one worker of the group
  takes it) and gets the readings back on its own result topic (`EmotionResult`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from agent.events.turns import EVENT_VERSION, STRICT, Id, Text, Version
from agent.values import EmotionReading

__all__ = ["MAX_EMOTION_TEXTS", "EmotionRequest", "EmotionResult", "WorkerBeat"]

MAX_EMOTION_TEXTS = 256


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
