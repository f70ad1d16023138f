"""Which workers holding turns have died, from the beats heard. Pure: time comes in as `now`.

A worker that dies holds its claimed turns under a lease that would keep them from
everyone else for `HEARTLINE_TURN_LEASE` seconds. Its beats stop long before that. A
worker that holds a live lease and has not beaten within `window` seconds is gone, and
the others take its turns over: whether they heard it die or started after it died (both
workers restarted, say). A worker judges only once it has listened for a whole window
without a break (since it started, and since its broker connection last came back), so
that it never mistakes a live worker it could not hear for a dead one.
Any beat says its sender is alive, a "not ready" one too: a stopping worker keeps
beating while it finishes its turns.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.events import WorkerBeat

__all__ = ["Departures"]


class Departures:
    __slots__ = ("_last_seen", "_me", "_window")

    def __init__(self, *, me: str, window: float) -> None:
        self._me = me
        self._window = window
        self._last_seen: dict[str, float] = {}

    def beat(self, beat: WorkerBeat, *, now: float) -> None:
        """Note a beat, heard at `now` (this worker's clock, not the sender's)."""
        self._last_seen[beat.worker_id] = now

    def gone(
        self, holders: Iterable[str], *, now: float, listening_since: float | None
    ) -> list[str]:
        """Which of `holders` (workers holding live leases) have not beaten lately.

        `listening_since`: since when beats could be heard without a break; None
        while they cannot (no bus connection): then no one is judged.
        """
        if listening_since is None or now - listening_since < self._window:
            return []
        heard = {w for w, seen in self._last_seen.items() if now - seen <= self._window}
        return sorted(set(holders) - heard - {self._me})
