"""When to try a webhook delivery again, and whether to at all.

Pure: the caller passes what happened (an HTTP status or a `Failure`), the
attempt number and a random draw, and gets a `Step` back. The rules:

* 2xx: delivered.
* 408, 429, 5xx, a timeout, a failed connection: the receiver may recover, so
  try again after an exponential backoff (`Backoff`), until the attempts run out.
* Any other status (other 4xx, 1xx, 3xx): the receiver refused this request and
  will refuse it again; give up at once. Redirects are not followed either: a
  webhook URL that moved is a configuration to fix, not a hop to take with a
  signed transcript.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus

__all__ = ["Backoff", "Failure", "Step", "Verdict", "decide"]

# Statuses that say "not now" rather than "no".
_TRANSIENT = frozenset({408, 425, 429})


class Failure(StrEnum):
    """An attempt that got no HTTP response."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Delay after failed attempt n: ``base * factor**(n-1)``, capped at `cap` seconds.

    `spread` is the share of the delay that jitter may take off, so that many
    deliveries failing together (a receiver restarting) do not retry in step.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    spread: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap < math.inf:
            raise ValueError("backoff base must be positive and at most the cap, a finite one")
        if self.factor < 1:
            raise ValueError("backoff factor must be at least 1")
        if not 0 <= self.spread <= 1:
            raise ValueError("backoff spread must be between 0 and 1")

    def delay(self, attempt: int, *, draw: float = 0.0) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based); `draw` in [0, 1)."""
        if attempt < 1:
            raise ValueError("attempts count from 1")
        if not 0 <= draw < 1:
            raise ValueError("draw must be in [0, 1)")
        steps = attempt - 1
        # Compare exponents first: the power itself may overflow long past the cap.
        if self.factor > 1 and steps >= math.log(self.cap / self.base, self.factor):
            raw = self.cap
        else:
            raw = min(self.cap, self.base * self.factor**steps)
        return raw * (1 - self.spread * draw)


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What to do after an attempt; `error` says why it did not deliver (None when it did)."""

    verdict: Verdict
    delay: float = 0.0
    error: str | None = None


def decide(
    result: int | Failure,
    *,
    attempt: int,
    attempts: int,
    backoff: Backoff,
    draw: float = 0.0,
    detail: str = "",
) -> Step:
    """The step after attempt `attempt` of at most `attempts` ended with `result`.

    `detail` (e.g. the exception's text) is added to the recorded reason.
    """
    if isinstance(result, int) and 200 <= result < 300:
        return Step(verdict=Verdict.DELIVERED)
    reason = _describe(result) + (f": {detail}" if detail else "")
    if isinstance(result, int) and not _retryable(result):
        return Step(verdict=Verdict.FAILED, error=f"{reason} (refused; not retried)")
    if attempt >= attempts:
        return Step(verdict=Verdict.FAILED, error=f"{reason} (gave up after {attempt} attempts)")
    return Step(verdict=Verdict.RETRY, delay=backoff.delay(attempt, draw=draw), error=reason)


def _retryable(status: int) -> bool:
    return status in _TRANSIENT or 500 <= status < 600


def _describe(result: int | Failure) -> str:
    if isinstance(result, Failure):
        return "timed out" if result is Failure.TIMEOUT else "connection failed"
    try:
        return f"HTTP {result} {HTTPStatus(result).phrase}"
    except ValueError:
        return f"HTTP {result}"
