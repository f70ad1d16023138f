"""Emotion analysis for `/v1/emotion`: the gateway asks the workers over the bus.

A gateway holds no model: it publishes an `EmotionRequest` and waits for the
`EmotionResult` on its own result topic, so the texts are read by the workers'
recognizers, through the same micro-batcher as live turns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from agent import topics
from agent.bus.base import EventBus
from agent.errors import StageError
from agent.events import EmotionRequest, EmotionResult
from agent.gateway.answers import Answers, listening
from agent.gateway.roster import Availability
from agent.privacy.redaction import redact
from agent.values import EmotionReading

__all__ = ["EmotionClient", "NoWorker", "emotion_client"]


class NoWorker(Exception):
    """No worker is there to read the texts."""


class EmotionClient:
    """`read` sends texts to the workers and returns their readings."""

    def __init__(
        self, answers: Answers[EmotionResult], *, workers: Callable[[], Availability]
    ) -> None:
        self._answers = answers
        self._workers = workers

    async def read(self, texts: Sequence[str]) -> tuple[EmotionReading, ...]:
        """One reading per text, in order, of the texts redacted (they leave for the
        bus). Safe to cancel.

        Raises `NoWorker`, `TimeoutError` when no answer comes in time,
        `StageError` when the worker could not read them, `BusError`.
        """
        if self._workers() is Availability.NONE:
            raise NoWorker("no worker is available to read the texts")
        redacted = tuple(redact(text) for text in texts)

        def request(request_id: str, reply_to: str) -> EmotionRequest:
            return EmotionRequest(request_id=request_id, reply_to=reply_to, texts=redacted)

        result = await self._answers.ask(topics.EMOTION_REQUESTS, request)
        if result.error is not None:
            raise StageError("emotion", result.error)
        if len(result.readings) != len(texts):
            raise StageError("emotion", "the worker returned a reading count that does not match")
        return result.readings


@asynccontextmanager
async def emotion_client(
    bus: EventBus,
    *,
    workers: Callable[[], Availability],
    timeout_s: float = 15.0,
) -> AsyncIterator[EmotionClient]:
    """An `EmotionClient` listening on its own result topic for the duration of the block."""
    async with listening(
        bus, EmotionResult, topics.emotion_results, timeout_s=timeout_s
    ) as answers:
        yield EmotionClient(answers, workers=workers)
