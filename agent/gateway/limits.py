"""Per-connection limits of the gateway, and the token bucket that enforces the rate.

Pure: nothing here reads a clock; time comes in as `now` (seconds, monotonic).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import ConfigError

__all__ = ["ConnectionLimits", "TokenBucket"]

_EPSILON = 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionLimits:
    """What one client connection may do, and for how long it may stay silent.

    Every field has a finite default; `GatewaySettings` carries one of these.
    """

    # Limits
    soft_frame_bytes: int = 64 * 1024
    """Frames longer than this (UTF-8 bytes) are answered with `too_large` and dropped."""
    max_frame_bytes: int = 1024 * 1024
    """websockets' own `max_size`: a larger frame closes the connection with 1009."""
    rate_per_s: float = 10.0
    """Sustained client frames per second (token bucket refill rate)."""
    burst: int = 20
    """Client frames allowed back to back (token bucket capacity)."""
    reply_queue: int = 1_000
    """Bus events queued for a connection before it is cut off as `overloaded` (1013)."""
    remembered_turns: int = 10_000
    """Turn ids remembered per session for `duplicate_id` and `unknown_turn` checks."""
    # Timeouts
    idle_timeout_s: float = 300.0
    """Seconds without a client frame before the server closes with 1001 "idle"."""
    send_timeout_s: float = 10.0
    """Seconds a message may wait for a client that reads nothing (its connection's
    buffers full) before the server closes with 1013 `overloaded` instead of waiting on."""
    hello_timeout_s: float = 10.0
    """Seconds to wait for `hello` when the handshake carried no token."""
    redeliver_after_s: float = 10.0
    """Seconds a turn may wait with no event before it is published again."""
    redeliver_attempts: int = 6
    """Publications of a turn before the client gets `turn_timeout`.

    Keep `redeliver_after_s * redeliver_attempts` well above the workers' turn
    lease: a turn held by a worker that died is taken over when its lease ends.
    """

    def __post_init__(self) -> None:
        positive = {
            "soft_frame_bytes": self.soft_frame_bytes,
            "max_frame_bytes": self.max_frame_bytes,
            "rate_per_s": self.rate_per_s,
            "burst": self.burst,
            "reply_queue": self.reply_queue,
            "remembered_turns": self.remembered_turns,
            "idle_timeout_s": self.idle_timeout_s,
            "send_timeout_s": self.send_timeout_s,
            "hello_timeout_s": self.hello_timeout_s,
            "redeliver_after_s": self.redeliver_after_s,
            "redeliver_attempts": self.redeliver_attempts,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"gateway limit {name} must be positive, got {value!r}")
        if self.max_frame_bytes < self.soft_frame_bytes:
            raise ConfigError(
                "gateway limit max_frame_bytes must be at least soft_frame_bytes "
                f"({self.max_frame_bytes} < {self.soft_frame_bytes}); raise max_frame_bytes"
            )


class TokenBucket:
    """A token bucket: `burst` tokens, refilled at `rate_per_s`; one frame costs one token.

    The bucket starts full. A clock that goes backwards refills nothing.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate_per_s")

    def __init__(self, *, rate_per_s: float, burst: int, now: float) -> None:
        if not rate_per_s > 0 or burst < 1:
            raise ConfigError(
                f"a token bucket needs rate_per_s > 0 and burst >= 1, "
                f"got rate_per_s={rate_per_s!r}, burst={burst!r}"
            )
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    @property
    def tokens(self) -> float:
        """Tokens left as of the last call (not refilled to any later time)."""
        return self._tokens

    def allow(self, now: float, cost: float = 1.0) -> bool:
        """Take `cost` tokens if the bucket holds them at time `now`; say whether it did."""
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
            self._last = now
        if self._tokens >= cost - _EPSILON:  # refills in small steps may round down
            self._tokens = max(0.0, self._tokens - cost)
            return True
        return False
