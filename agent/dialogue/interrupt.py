"""Run a piece of work until it finishes or a barge-in interrupts it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

__all__ = ["run_interruptible"]

_log = structlog.get_logger(__name__)


async def run_interruptible(
    work: Coroutine[Any, Any, None], interrupt: asyncio.Event, *, cleanup_timeout: float
) -> bool:
    """Run `work`; if `interrupt` is set first, cancel it and wait for its clean-up.

    Returns True when interrupted. `work` must not raise (catch inside it);
    its clean-up after cancellation is awaited for at most `cleanup_timeout`
    seconds. Safe to cancel: cancelling the caller cancels `work` too.
    """
    if interrupt.is_set():
        work.close()
        return True
    async with asyncio.TaskGroup() as group:
        task = group.create_task(work)
        waiter = group.create_task(interrupt.wait())
        await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
        interrupted = not task.done()
        waiter.cancel()
        if interrupted:
            task.cancel()
            await asyncio.wait((task,), timeout=cleanup_timeout)
            if not task.done():
                _log.error("interrupted work ignored cancellation", bound_s=cleanup_timeout)
    return interrupted
