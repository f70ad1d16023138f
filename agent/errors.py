"""Every error Heartline raises on purpose.

The tree::

    HeartlineError
    ├── ConfigError            a setting is missing or wrong; the message says how to fix it
    ├── EventDecodeError       bytes off a bus or a file are not a valid event
    ├── BusError               the event bus failed
    │   ├── BusClosedError     publish or receive on a bus that is not running
    │   └── BusOverflowError   a subscriber fell too far behind and was cut off
    ├── AuthError              a token is missing, malformed, expired or forged
    ├── WireError              a client frame the gateway refuses; carries a stable `code`
    ├── StoreError             the database failed
    ├── GeneratorError         a reply generator (an LLM server) failed
    │   ├── GeneratorUnavailable   before its first token: safe to fall back to another
    │   └── GeneratorBroke         after its first token: part of the reply was sent
    └── StageError             a stage of the turn pipeline failed (recognizer, policy, generator)

Timeouts stay `TimeoutError`; cancellation stays `asyncio.CancelledError`.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BusClosedError",
    "BusError",
    "BusOverflowError",
    "ConfigError",
    "EventDecodeError",
    "GeneratorBroke",
    "GeneratorError",
    "GeneratorUnavailable",
    "HeartlineError",
    "StageError",
    "StoreError",
    "WireError",
    "reportable",
]


class HeartlineError(Exception):
    """Base of every error Heartline raises on purpose."""


class ConfigError(HeartlineError):
    """A setting is missing or invalid; the message says how to fix it."""


class EventDecodeError(HeartlineError):
    """A payload is not a valid event of a known type and version."""


class BusError(HeartlineError):
    """The event bus failed."""


class BusClosedError(BusError):
    """The bus is not running (not entered yet, or already left)."""


class BusOverflowError(BusError):
    """A subscription's bounded queue overflowed; the subscription was closed."""


class AuthError(HeartlineError):
    """A token is missing, malformed, expired or not signed by our secret."""


class WireError(HeartlineError):
    """A client frame or request the gateway refuses; sent to the client as `error`.

    `code` is one of the gateway's stable error codes (`agent.gateway.protocol.ErrorCode`);
    `retry_after_ms` says when trying again may succeed (`overloaded`).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        turn_id: str | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.turn_id = turn_id
        self.retry_after_ms = retry_after_ms


class StoreError(HeartlineError):
    """The database failed or holds something we cannot read."""


class GeneratorError(HeartlineError):
    """A reply generator failed; the message names the cause, never the user's words."""


class GeneratorUnavailable(GeneratorError):
    """The generator produced nothing: refused, unreachable, timed out before its first
    token, or its circuit is open. Nothing reached the user, so another may answer."""


class GeneratorBroke(GeneratorError):
    """The generator failed after its first token: the user already has part of a reply."""


class StageError(HeartlineError):
    """A stage of the turn pipeline failed.

    `stage` names it ("emotion", "context", "policy", "generation") so the
    client gets a stable error code without internals.
    """

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


def reportable(error: BaseException) -> HeartlineError | OSError | None:
    """The error to report in one line, looking inside task groups; None for a bug."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error if isinstance(error, HeartlineError | OSError) else None
