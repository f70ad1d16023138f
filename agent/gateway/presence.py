"""The gateway's side of worker presence: a roster kept up to date from the workers' beats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from agent import topics
from agent.bus.base import EventBus
from agent.events import WorkerBeat
from agent.gateway.roster import WorkerRoster

__all__ = ["follow_workers"]


@asynccontextmanager
async def follow_workers(
    bus: EventBus, *, interval: float, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[WorkerRoster]:
    """A roster fed by every worker's beats for the duration of the block."""
    roster = WorkerRoster(interval=interval)

    async def listen() -> None:
        async with bus.subscribe(topics.ALL_WORKERS) as beats:
            async for delivery in beats:
                if isinstance(delivery.event, WorkerBeat):
                    roster.beat(delivery.event, now=clock())

    async with asyncio.TaskGroup() as tasks:
        listening = tasks.create_task(listen())
        try:
            yield roster
        finally:
            listening.cancel()
