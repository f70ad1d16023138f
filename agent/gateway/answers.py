"""Requests a gateway sends the workers, and their answers on a topic of its own.

Each request carries a fresh id and this gateway's reply address; the worker that
takes it publishes the answer, with that id, on the gateway's answer topic, where
`Answers` hands it to the waiting caller.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Generic, Protocol, TypeVar

from agent.bus.base import EventBus, Subscription
from agent.events import Event

__all__ = ["Answers", "listening"]


class _Answer(Protocol):
    @property
    def request_id(self) -> str: ...


_A = TypeVar("_A", bound=_Answer)


class Answers(Generic[_A]):
    """The answers of type `kind` this gateway waits for, by request id."""

    def __init__(self, bus: EventBus, kind: type[_A], *, reply_to: str, timeout_s: float) -> None:
        self._bus = bus
        self._kind = kind
        self._reply_to = reply_to
        self._timeout_s = timeout_s
        self._waiting: dict[str, asyncio.Future[_A]] = {}

    async def ask(self, topic: str, request: Callable[[str, str], Event]) -> _A:
        """Publish `request(request_id, reply_to)` on `topic`; its answer. Safe to cancel.

        Raises `TimeoutError` when no answer comes in time, `BusError`.
        """
        request_id = secrets.token_hex(12)
        answer: asyncio.Future[_A] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answer
        try:
            await self._bus.publish(topic, request(request_id, self._reply_to))
            async with asyncio.timeout(self._timeout_s):
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
async def listening(
    bus: EventBus, kind: type[_A], answer_topic: Callable[[str], str], *, timeout_s: float
) -> AsyncIterator[Answers[_A]]:
    """`Answers` of type `kind`, arriving on `answer_topic(reply_to)` for a reply
    address of this gateway's own, for the duration of the block."""
    reply_to = secrets.token_hex(8)
    answers = Answers(bus, kind, reply_to=reply_to, timeout_s=timeout_s)
    async with bus.subscribe(answer_topic(reply_to)) as subscription, asyncio.TaskGroup() as tasks:
        listener = tasks.create_task(answers.listen(subscription))
        try:
            yield answers
        finally:
            listener.cancel()
