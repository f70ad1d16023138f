"""The worker's side of presence: a beat on its own topic every `interval` seconds.

Gateways count a worker as there while its beats come (`agent.gateway.roster`),
refuse turns at once when none is, and say so on `/readyz`. A stopping worker
beats "not ready" (gateways stop counting it at once) until it has finished its
turns, so the other workers do not take them over (`agent.dialogue.departures`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog

from agent import topics
from agent.bus.base import EventBus
from agent.errors import BusError
from agent.events import WorkerBeat

__all__ = ["announce_presence"]

_log = structlog.get_logger(__name__)


@asynccontextmanager
async def announce_presence(
    bus: EventBus,
    *,
    worker_id: str,
    ready: Callable[[], bool],
    interval: float,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[None]:
    """Beat while the block runs; `ready` says whether the worker takes turns now."""
    topic = topics.worker(worker_id)

    async def beat(is_ready: bool) -> None:
        try:
            await bus.publish(topic, WorkerBeat(worker_id=worker_id, ready=is_ready, at=clock()))
        except BusError as exc:
            _log.warning("presence beat not sent", error=str(exc))

    async def beating() -> None:
        while True:
            await beat(ready())
            await asyncio.sleep(interval)

    try:
        async with asyncio.TaskGroup() as tasks:
            task = tasks.create_task(beating())
            try:
                yield
            finally:
                task.cancel()
    finally:
        await beat(False)
