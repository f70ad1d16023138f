"""Requests a gateway sends the workers, and their answers on a topic of its own.

Each request carries a fresh id; the worker that takes it publishes the answer, with
that id, on the asking gateway's answer topic, where `Answers` hands it to the waiting
caller.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Generic, Protocol, TypeVar

from agent.bus.base import EventBus, Subscription

__all__ = ["Answers", "listening"]


class _Answer(Protocol):
    @property
    def request_id(self) -> str: ...


_A = TypeVar("_A", bound=_Answer)


class Answers(Generic[_A]):
    """The answers of type `kind` this gateway waits for, by request id."""

    def __init__(self, kind: type[_A]) -> None:
        self._kind = kind
        self._waiting: dict[str, asyncio.Future[_A]] = {}

    async def ask(self, publish: Callable[[str], Awaitable[None]], *, timeout_s: float) -> _A:
        """Let `publish` send the request under a new id; its answer. Safe to cancel.

        Raises `TimeoutError` when no answer comes within `timeout_s`, and what
        `publish` raises.
        """
        request_id = secrets.token_hex(12)
        answer: asyncio.Future[_A] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answer
        try:
            await publish(request_id)
            async with asyncio.timeout(timeout_s):
                return await answer
        finally:
            self._waiting.pop(request_id, None)

    async def listen(self, answers: Subscription) -> None:
        async for delivery in answers:
            answer = delivery.event
            if not isinstance(answer, self._kind):
                continue
            waiting = self._waiting.get(answer.request_id)
            if waiting is not None and not waiting.done():
                waiting.set_result(answer)


@asynccontextmanager
async def listening(bus: EventBus, topic: str, kind: type[_A]) -> AsyncIterator[Answers[_A]]:
    """`Answers` of type `kind` arriving on `topic`, for the duration of the block."""
    answers = Answers(kind)
    async with bus.subscribe(topic) as subscription, asyncio.TaskGroup() as tasks:
        listener = tasks.create_task(answers.listen(subscription))
        try:
            yield answers
        finally:
            listener.cancel()
