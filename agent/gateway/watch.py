"""This gateway's board of live sessions, kept from every session's watch topic, and the
operator consoles that follow it.

Overflow policy: each console gets a bounded queue of changes; one that falls
`max_queued` changes behind is cut off (it reconnects and gets a fresh snapshot)
instead of holding the others back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Final

from agent import topics
from agent.bus.base import EventBus
from agent.gateway.board import Board, BoardChange

__all__ = ["Watch", "watch_sessions"]

_MAX_QUEUED: Final = 1000
_FELL_BEHIND: Final = None


class Watch:
    """The board, and a queue of its changes for each console listening."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self._listeners: set[asyncio.Queue[BoardChange | None]] = set()

    @contextmanager
    def listen(self, max_queued: int = _MAX_QUEUED) -> Iterator[asyncio.Queue[BoardChange | None]]:
        """Changes from now on, for the duration of the block; None once this listener fell
        behind and was cut off."""
        queue: asyncio.Queue[BoardChange | None] = asyncio.Queue(max_queued + 1)
        self._listeners.add(queue)
        try:
            yield queue
        finally:
            self._listeners.discard(queue)

    def tell(self, change: BoardChange) -> None:
        for queue in list(self._listeners):
            if queue.qsize() >= queue.maxsize - 1:
                self._listeners.discard(queue)
                queue.put_nowait(_FELL_BEHIND)
            else:
                queue.put_nowait(change)


@asynccontextmanager
async def watch_sessions(
    bus: EventBus, *, stale_after: float, clock: Callable[[], float] = time.time
) -> AsyncIterator[Watch]:
    """A `Watch` fed by every watch topic for the duration of the block."""
    watch = Watch(Board(stale_after=stale_after))

    async def follow() -> None:
        async with bus.subscribe(topics.ALL_WATCH, max_queued=100_000) as events:
            async for delivery in events:
                change = watch.board.apply(delivery.event, now=clock())
                if change is not None:
                    watch.tell(change)

    async def expire() -> None:
        while True:
            await asyncio.sleep(max(1.0, stale_after / 4))
            for change in watch.board.expire(now=clock()):
                watch.tell(change)

    async with asyncio.TaskGroup() as tasks:
        running = [tasks.create_task(follow()), tasks.create_task(expire())]
        try:
            yield watch
        finally:
            for task in running:
                task.cancel()
