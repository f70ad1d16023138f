"""Admission control: the turns a gateway process has in flight, and whether one more fits.

A turn counts from its publication until its reply ends, it fails, or it is cancelled (a
cancelled turn costs a worker next to nothing: it is skipped). A new turn is refused with
`overloaded` and a `retry_after_ms` at once, instead of queueing behind work that cannot
be done in time, when
- the process already has `max_in_flight` turns in flight, or
- every turn that workers started over the last `window_s` seconds had waited
  `max_wait_s` or longer for them: the workers are behind, whatever the count. The
  shortest recent wait, not the longest, says so: one turn stuck on a worker that died
  (it comes back through re-publication) must not turn everyone else away while the
  other turns start at once.

`retry_after_ms` is how long the turns waiting now take to drain at the rate turns ended
over the last `window_s` seconds; when none ended (a burst of new sessions, all still
under way), the longest a turn may wait, `max_wait_s`. Only the window's ends and starts
are kept, however many turns a process answers. Pure: time comes in as `now` (seconds).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from agent.errors import ConfigError

__all__ = ["Admission", "AdmissionLimits", "TurnKey"]

TurnKey = tuple[str, str]
"""(session id, turn id): turn ids are the clients' and unique per session only."""

MIN_RETRY_MS = 100
MAX_RETRY_MS = 30_000


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmissionLimits:
    max_in_flight: int = 1_000
    """Turns in flight in one gateway process before new ones are refused."""
    max_wait_s: float = 5.0
    """How long a turn may wait for a worker before new turns are refused."""
    window_s: float = 10.0
    """How far back the rate of ending turns is measured."""

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.max_wait_s <= 0 or self.window_s <= 0:
            raise ConfigError(
                "admission limits must be positive: "
                f"max_in_flight={self.max_in_flight}, max_wait_s={self.max_wait_s}, "
                f"window_s={self.window_s}"
            )


class Admission:
    """One gateway process's turns in flight, shared by all its sessions."""

    def __init__(self, limits: AdmissionLimits | None = None) -> None:
        self._limits = limits or AdmissionLimits()
        self._waiting: dict[TurnKey, float] = {}  # turn: published at
        self._running: set[TurnKey] = set()
        self._ends: deque[float] = deque()
        # (started at, waited) of recent starts, the waits increasing: the first is the
        # shortest wait in the window (a sliding-window minimum).
        self._waits: deque[tuple[float, float]] = deque()

    @property
    def in_flight(self) -> int:
        return len(self._waiting) + len(self._running)

    def admit(self, key: TurnKey, *, now: float) -> int | None:
        """Count the turn in (None), or refuse it: the milliseconds to wait before retrying."""
        refused = self.refusal(now=now)
        if refused is None:
            self._waiting[key] = now
        return refused

    def refusal(self, *, now: float) -> int | None:
        """What `admit` would answer now, counting nothing in."""
        limits = self._limits
        while self._waits and self._waits[0][0] < now - limits.window_s:
            self._waits.popleft()
        behind = bool(self._waits) and self._waits[0][1] >= limits.max_wait_s
        if self.in_flight >= limits.max_in_flight or behind:
            return self._retry_after_ms(now)
        return None

    def started(self, key: TurnKey, *, now: float) -> None:
        """A worker sent the first event of the turn."""
        published = self._waiting.pop(key, None)
        if published is None:
            return
        self._running.add(key)
        waited = now - published
        while self._waits and self._waits[-1][1] >= waited:
            self._waits.pop()
        self._waits.append((now, waited))

    def finished(self, key: TurnKey, *, now: float) -> None:
        """The turn's reply ended or the turn failed: it counts toward the rate."""
        if self._waiting.pop(key, None) is not None or key in self._running:
            self._running.discard(key)
            self._ends.append(now)
            self._forget_ends(now)

    def released(self, key: TurnKey) -> None:
        """The turn was cancelled, given up on, or its session closed."""
        self._waiting.pop(key, None)
        self._running.discard(key)

    def _forget_ends(self, now: float) -> None:
        """Let go of the ends that left the window: the rate needs no others."""
        while self._ends and self._ends[0] < now - self._limits.window_s:
            self._ends.popleft()

    def _retry_after_ms(self, now: float) -> int:
        window = self._limits.window_s
        self._forget_ends(now)
        if self._ends:
            drain_ms = 1000.0 * (len(self._waiting) + 1) * window / len(self._ends)
        else:
            drain_ms = 1000.0 * self._limits.max_wait_s
        return max(MIN_RETRY_MS, min(MAX_RETRY_MS, math.ceil(drain_ms)))
