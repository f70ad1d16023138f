"""`HandoffForwarder`: handoff requests from the bus, handed to the notifier.

It subscribes to every session's handoff topic with a shared `group`, so that
among the workers of one group each request reaches one of them. Requests are
submitted one at a time, in the order they arrive; a submit that fails (the
database is away) is tried again with backoff a few times before the request
is logged as lost.
"""

from __future__ import annotations

import asyncio
import random
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Protocol

import structlog

from agent import topics
from agent.bus.base import EventBus, Subscription
from agent.errors import StoreError
from agent.events import HandoffRequested
from agent.handoff.retry import Backoff

__all__ = ["HandoffForwarder", "HandoffSubmitter"]

_log = structlog.get_logger(__name__)


class HandoffSubmitter(Protocol):
    async def submit(self, request: HandoffRequested) -> str:
        """Record `request` for delivery; its delivery id."""
        ...


class HandoffForwarder:
    """While entered, every `HandoffRequested` on the bus goes to `notifier.submit`.

    Not reentrant. Leaving ends the subscription, then gives the requests already
    received `drain_timeout` seconds to be submitted before cancelling the rest
    (those are lost, as any event a stopping subscriber holds); leaving on an
    error or a cancellation cancels at once.
    """

    def __init__(
        self,
        bus: EventBus,
        notifier: HandoffSubmitter,
        *,
        group: str | None,
        # Timeouts
        drain_timeout: float = 10.0,
        # Limits
        submit_attempts: int = 5,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if submit_attempts < 1:
            raise ValueError("submit_attempts must be at least 1")
        if not 0 <= drain_timeout < float("inf"):
            raise ValueError("drain_timeout must be finite and not negative")
        self._bus = bus
        self._notifier = notifier
        self._group_name = group
        self._drain_timeout = drain_timeout
        self._attempts = submit_attempts
        self._backoff = backoff or Backoff(base=0.5, cap=10.0)
        self._rng = rng or random.Random()
        self._stack: AsyncExitStack | None = None
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> HandoffForwarder:
        if self._stack is not None:
            raise RuntimeError("HandoffForwarder is already running")
        stack = AsyncExitStack()
        try:
            group = await stack.enter_async_context(asyncio.TaskGroup())
            subscription = await stack.enter_async_context(
                self._bus.subscribe(topics.ALL_HANDOFFS, group=self._group_name)
            )
        except BaseException:
            await stack.aclose()
            raise
        self._task = group.create_task(
            self._forward(subscription), name="heartline-handoff-forwarder"
        )
        self._stack, self._subscription = stack, subscription
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, subscription, task = self._stack, self._subscription, self._task
        assert stack is not None, "__aexit__ without __aenter__"
        assert subscription is not None
        assert task is not None
        self._stack = self._subscription = self._task = None
        subscription.close()  # what it holds is still read, then the loop ends
        if exc_type is None:
            await asyncio.wait({task}, timeout=self._drain_timeout)
        task.cancel()
        # The caller's exception goes on as it is, not wrapped in the group's.
        await stack.aclose()

    async def _forward(self, subscription: Subscription) -> None:
        async for delivery in subscription:
            event = delivery.event
            if isinstance(event, HandoffRequested):
                await self._submit(event)
            else:
                _log.warning("handoff.unexpected_event", type=event.type, topic=delivery.topic)

    async def _submit(self, request: HandoffRequested) -> None:
        log = _log.bind(session_id=request.session_id, trigger=request.trigger)
        for attempt in range(1, self._attempts + 1):
            try:
                await self._notifier.submit(request)
                return
            except (StoreError, TimeoutError) as error:
                if attempt == self._attempts:
                    log.error("handoff.lost", attempts=attempt, error=str(error))
                    return
                log.warning("handoff.submit_failed", attempt=attempt, error=str(error))
                await asyncio.sleep(self._backoff.delay(attempt, draw=self._rng.random()))
