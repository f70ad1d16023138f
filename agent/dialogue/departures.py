"""Which other workers have died, from their beats. Pure: time comes in as `now`.

A worker that dies holds its claimed turns under a lease that would keep them from
everyone else for `HEARTLINE_TURN_LEASE` seconds. Its beats stop long before that: the
other workers count it gone once `window` seconds pass without one, and take its turns
over. A worker that says it is leaving is not watched any more: it finishes its turns,
and lets go of those it could not finish itself.
"""

from __future__ import annotations

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
        if beat.worker_id == self._me:
            return
        if beat.ready:
            self._last_seen[beat.worker_id] = now
        else:
            self._last_seen.pop(beat.worker_id, None)

    def silent(self, *, now: float) -> list[str]:
        """Workers not heard from within the window, each named once."""
        gone = [worker for worker, seen in self._last_seen.items() if now - seen > self._window]
        for worker in gone:
            del self._last_seen[worker]
        return gone
