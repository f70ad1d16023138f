"""Which workers are there, from their beats. Pure: time comes in as `now`.

A gateway counts a worker as there while its beats keep coming: one heard
within `missed` beat intervals. Until the gateway has listened that long
without a break (just after it starts, and again after its broker connection
came back) it may not have heard a worker that is there, and says so
(`UNKNOWN`) instead of claiming that no worker is there.
"""

from __future__ import annotations

import math
from enum import StrEnum

from agent.events import WorkerBeat

__all__ = ["Availability", "WorkerRoster"]


class Availability(StrEnum):
    AVAILABLE = "available"
    """A worker spoke recently: turns will be answered."""
    UNKNOWN = "unknown"
    """The gateway has just started and heard no worker yet."""
    NONE = "none"
    """No worker for a while: a turn would wait for nothing."""


class WorkerRoster:
    __slots__ = ("_changed_at", "_interval", "_last_seen", "_missed")

    def __init__(self, *, interval: float, missed: int = 3) -> None:
        self._interval = interval
        self._missed = missed
        self._last_seen: dict[str, float] = {}
        self._changed_at = -math.inf

    @property
    def changed_at(self) -> float:
        """When a worker last came or went (as of the last `count`): a turn published
        before then may have gone to a worker that is gone, or to none at all."""
        return self._changed_at

    @property
    def window(self) -> float:
        """Seconds a beat counts for."""
        return self._interval * self._missed

    def beat(self, beat: WorkerBeat, *, now: float) -> None:
        """Note a beat as heard at `now` (this gateway's clock, not the worker's)."""
        if beat.ready:
            if beat.worker_id not in self._last_seen:
                self._changed_at = now
            self._last_seen[beat.worker_id] = now
        elif self._last_seen.pop(beat.worker_id, None) is not None:
            self._changed_at = now

    def count(self, now: float) -> int:
        """Workers heard from within the window; forgets the others."""
        for worker, seen in list(self._last_seen.items()):
            if now - seen > self.window:
                del self._last_seen[worker]
                self._changed_at = now
        return len(self._last_seen)

    def availability(self, now: float, *, listening_since: float | None) -> Availability:
        """`listening_since`: since when beats could be heard without a break (the
        bus connection's start); None while they cannot (no connection)."""
        if self.count(now):
            return Availability.AVAILABLE
        if listening_since is None or now - listening_since <= self.window:
            return Availability.UNKNOWN
        return Availability.NONE
