"""The WebSocket sessions this gateway serves, so that shutting down can end each one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from agent.gateway.connection import SessionEnds
from agent.gateway.relay import Ending

__all__ = ["LiveConnections"]

_log = structlog.get_logger(__name__)


class LiveConnections:
    """Each connection's handler task and the handle that ends its session."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[asyncio.Task[object], SessionEnds] = {}

    def __len__(self) -> int:
        return len(self._open)

    @contextmanager
    def serving(self) -> Iterator[SessionEnds]:
        """Register the current task's connection for the duration of the block."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("serving() needs a running task")
        ends = SessionEnds()
        self._open[task] = ends
        try:
            yield ends
        finally:
            self._open.pop(task, None)

    async def end_all(self, ending: Ending, *, grace_s: float) -> None:
        """Ask every session to end with `ending`; cancel what is left after `grace_s`."""
        if not self._open:
            return
        for ends in self._open.values():
            ends.request(ending)
        _, pending = await asyncio.wait(list(self._open), timeout=grace_s)
        if pending:
            _log.warning("sessions did not end in time; cancelling them", count=len(pending))
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=grace_s)
