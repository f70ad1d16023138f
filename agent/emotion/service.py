"""Emotion analysis for the gateways: the workers answer `EmotionRequest`s from the bus.

The texts go through the worker's own recognizer, the same micro-batcher as live
turns, so analysis requests share forward passes with them. One worker of the
group takes each request (a shared subscription); at most `concurrency`
requests are read at once, further ones wait in the subscription's bounded queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from agent import topics
from agent.bus.base import EventBus
from agent.emotion.base import EmotionRecognizer
from agent.errors import BusError
from agent.events import EmotionRequest, EmotionResult

__all__ = ["serve_emotion_requests"]

_log = structlog.get_logger(__name__)


@asynccontextmanager
async def serve_emotion_requests(
    bus: EventBus,
    recognizer: EmotionRecognizer,
    *,
    group: str,
    concurrency: int = 4,
    read_timeout_s: float = 30.0,
) -> AsyncIterator[None]:
    """Answer the gateways' emotion requests for the duration of the block."""
    slots = asyncio.Semaphore(concurrency)

    async def answer(request: EmotionRequest) -> None:
        try:
            async with slots, asyncio.timeout(read_timeout_s):
                readings = await recognizer.read_batch(list(request.texts))
            result = EmotionResult(request_id=request.request_id, readings=tuple(readings))
        except TimeoutError:
            result = EmotionResult(request_id=request.request_id, error="the reading timed out")
        except Exception:
            _log.exception("emotion request failed", request_id=request.request_id)
            result = EmotionResult(request_id=request.request_id, error="the reading failed")
        try:
            await bus.publish(topics.emotion_results(request.reply_to), result)
        except BusError as exc:
            _log.warning("emotion result not delivered", error=str(exc))

    async def take(tasks: asyncio.TaskGroup) -> None:
        async with bus.subscribe(topics.EMOTION_REQUESTS, group=group) as requests:
            async for delivery in requests:
                if isinstance(delivery.event, EmotionRequest):
                    tasks.create_task(answer(delivery.event))

    async with asyncio.TaskGroup() as tasks:
        taking = tasks.create_task(take(tasks))
        try:
            yield
        finally:
            taking.cancel()
