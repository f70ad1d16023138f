"""A piece of work repeated on a timer while an async context is entered.

Used for the background upkeep of a worker (retention purges, merging learned
policy state): the task belongs to a `TaskGroup` the context owns, a failure
of one run is logged and the next run tries again, and leaving cancels it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType

import structlog

from agent.errors import StoreError

__all__ = ["Periodic"]

_log = structlog.get_logger(__name__)


class Periodic:
    """Runs `work` every `interval` seconds (first at once with `immediately`). Not reentrant."""

    def __init__(
        self,
        work: Callable[[], Awaitable[object]],
        *,
        interval: float,
        name: str,
        immediately: bool = False,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._work = work
        self._interval = interval
        self._name = name
        self._immediately = immediately
        self._group: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Periodic:
        if self._group is not None:
            raise RuntimeError(f"{self._name} is already running")
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._task = self._group.create_task(self._run(), name=f"heartline-{self._name}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        group, task = self._group, self._task
        assert group is not None, "__aexit__ without __aenter__"
        assert task is not None
        self._group = self._task = None
        task.cancel()
        await group.__aexit__(exc_type, exc, tb)

    async def _run(self) -> None:
        if not self._immediately:
            await asyncio.sleep(self._interval)
        while True:
            try:
                await self._work()
            except (StoreError, TimeoutError, ValueError) as error:
                _log.warning(f"{self._name}.failed", error=str(error))
            await asyncio.sleep(self._interval)
