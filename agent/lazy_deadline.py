"""A deadline that moves on every event but costs a timer only when it falls due.

A stream that must stop when a piece is late, or a session that must look again
when a reply is overdue, moves its deadline on every piece or event: with a timer
per step, that is a timer made and cancelled per token. `LazyDeadline` keeps one
timer. Moving the deadline later costs nothing: the armed timer fires at the old
time, finds the deadline moved, and arms itself for the new one. Only a deadline
moved earlier than the armed timer re-arms it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["LazyDeadline", "LazyTimeout"]


class LazyDeadline:
    """Calls `on_due` once the deadline set last (loop time) has passed, unless cleared.

    `on_due` runs from the event loop, never from `set`; the deadline is cleared
    before it runs. Use it from the loop's thread only.
    """

    __slots__ = ("_handle", "_handle_at", "_loop", "_on_due", "_when")

    def __init__(self, on_due: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_due = on_due
        self._when: float | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._handle_at = 0.0

    @property
    def when(self) -> float | None:
        return self._when

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def set(self, when: float | None) -> None:
        """Fall due at loop time `when`; None: no deadline (the timer, if armed, stays
        armed and finds nothing due)."""
        self._when = when
        if when is not None and (self._handle is None or when < self._handle_at):
            self._arm(when)

    def close(self) -> None:
        """No deadline and no timer: nothing is called any more."""
        self._when = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(when, self._fire)
        self._handle_at = when

    def _fire(self) -> None:
        self._handle = None
        when = self._when
        if when is None:
            return
        if when > self._handle_at:
            self._arm(when)
            return
        self._when = None
        self._on_due()


class LazyTimeout:
    """Ends the `asyncio.timeout(None)` block it watches once the deadline passes, on a
    `LazyDeadline`: a loop that enters such a block for every step or event pays no timer
    per step. A deadline that falls due while no block is watched does nothing.
    """

    __slots__ = ("_block", "_deadline")

    def __init__(self) -> None:
        self._block: asyncio.Timeout | None = None
        self._deadline = LazyDeadline(self._expire)

    def watch(self, block: asyncio.Timeout, when: float | None) -> None:
        """End `block` (entered, its own deadline None) at loop time `when`; None: never."""
        self._block = block
        self._deadline.set(when)

    def move(self, when: float | None) -> None:
        """A new deadline for the block watched now."""
        self._deadline.set(when)

    def unwatch(self) -> None:
        """The block is left: no deadline until the next `watch`."""
        self._block = None
        self._deadline.set(None)

    def close(self) -> None:
        """Nothing watched and no timer left."""
        self._block = None
        self._deadline.close()

    def _expire(self) -> None:
        block = self._block
        if block is not None and not block.expired():
            block.reschedule(self._deadline.loop.time())
