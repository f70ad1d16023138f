"""A circuit breaker: stop calling a server that keeps failing, try it again later.

Pure: time comes in as `now` (seconds on any monotonic clock), nothing sleeps.

    CLOSED ──(failures_to_open consecutive failures)──▶ OPEN
    OPEN ──(reset_after seconds)──▶ HALF_OPEN: one trial call is let through
    HALF_OPEN ──trial succeeds──▶ CLOSED        HALF_OPEN ──trial fails──▶ OPEN

A call whose outcome says nothing about the server (the caller cancelled it)
is `release`d: in HALF_OPEN that frees the trial slot for the next call.
"""

from __future__ import annotations

import enum
import math

from agent.errors import ConfigError

__all__ = ["Admission", "BreakerState", "CircuitBreaker"]


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Admission(enum.Enum):
    """How a call was let through: as an ordinary call, or as the half-open trial."""

    NORMAL = "normal"
    TRIAL = "trial"


class CircuitBreaker:
    """Counts consecutive failures; not thread-safe (one event loop owns it).

    Only the trial decides the fate of a half-open breaker: the outcome of an
    ordinary call that was let through before the breaker opened is ignored
    once it is open.
    """

    def __init__(self, *, failures_to_open: int, reset_after: float) -> None:
        if failures_to_open < 1:
            raise ConfigError(f"breaker failures_to_open must be >= 1, got {failures_to_open}")
        if not (reset_after > 0 and math.isfinite(reset_after)):
            raise ConfigError(f"breaker reset_after must be a positive number, got {reset_after}")
        self._failures_to_open = failures_to_open
        self._reset_after = reset_after
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False

    @property
    def failures(self) -> int:
        """Consecutive failures counted while closed."""
        return self._failures

    def state(self, now: float) -> BreakerState:
        """The state at `now` (an open breaker whose time is up reads HALF_OPEN)."""
        if self._state is BreakerState.OPEN and now - self._opened_at >= self._reset_after:
            return BreakerState.HALF_OPEN
        return self._state

    def admit(self, now: float) -> Admission | None:
        """Let a call through (how), or refuse it (None); in HALF_OPEN, one trial at a time."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return Admission.NORMAL
        if state is BreakerState.OPEN or self._trial_running:
            return None
        self._state = BreakerState.HALF_OPEN
        self._trial_running = True
        return Admission.TRIAL

    def record_success(self, admission: Admission) -> None:
        """The server answered the call: forget the failures; a successful trial closes it."""
        if admission is Admission.TRIAL:
            self._trial_running = False
            self._state = BreakerState.CLOSED
        if self._state is BreakerState.CLOSED:
            self._failures = 0

    def record_failure(self, admission: Admission, now: float) -> None:
        """The server failed the call; a failed trial, or one failure too many, opens it."""
        if admission is Admission.TRIAL:
            self._trial_running = False
            self._open(now)
        elif self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self._failures_to_open:
                self._open(now)

    def release(self, admission: Admission) -> None:
        """The call ended without telling anything about the server (it was cancelled)."""
        if admission is Admission.TRIAL:
            self._trial_running = False

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._failures = 0
