"""Signing a webhook body, and checking a signature the way a receiver should.

The header value is ``t=<unix seconds>,v1=<hex HMAC-SHA256>``, the MAC taken over
``f"{t}.".encode() + body`` with the shared secret. Binding the timestamp into the
MAC lets a receiver refuse a captured request replayed later (`verify`'s
`tolerance_s`) without keeping every delivery id for ever; the ``v1`` tag leaves
room for another scheme beside it. Pure functions: time comes in as arguments.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SIGNATURE_SCHEME", "sign", "verify"]

SIGNATURE_SCHEME = "v1"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The `X-Heartline-Signature` value for `body` sent at `timestamp` (unix seconds)."""
    return f"t={timestamp},{SIGNATURE_SCHEME}={_mac(secret, timestamp, body)}"


def verify(
    secret: bytes, header: str, body: bytes, *, now: float, tolerance_s: float = 300.0
) -> bool:
    """Whether `header` signs exactly `body` with `secret`, at most `tolerance_s` from `now`.

    Any ``v1`` entry may match (a sender rotating secrets may send one per secret);
    comparisons take constant time. A malformed header is simply not valid.
    """
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == SIGNATURE_SCHEME:
            signatures.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, timestamp, body).encode()
    # No early exit: every candidate is compared, each in constant time (as bytes,
    # since compare_digest refuses a str with non-ASCII characters).
    matches = [hmac.compare_digest(expected, candidate.encode()) for candidate in signatures]
    return any(matches)


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
