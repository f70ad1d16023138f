"""The WebSocket wire protocol, version 1, without I/O.

Three pure parts, tested without an event loop:

* `parse_frame` turns one client frame into a typed `ClientMessage` or raises
  `WireError` with a stable `ErrorCode`. It never raises anything else.
* `event_message` and the small builders turn bus events and outcomes into
  server messages (plain JSON objects); `encode_message` serialises them.
* `agent.gateway.session.SessionCore` (beside this module) keeps one session's
  turn bookkeeping.

docs/protocol.md is the client-facing description of everything here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from agent.emotion.labels import EKMAN, EKMAN_OF, LABELS
from agent.errors import WireError
from agent.events import (
    MAX_TEXT_CHARS,
    DecisionMade,
    EmotionRead,
    Event,
    Handoff,
    ReplyDelta,
    ReplyEnded,
    ReplyStarted,
    TurnFailed,
)

__all__ = [
    "MAX_TEXT_CHARS",
    "MAX_TOKEN_CHARS",
    "PROTOCOL_VERSION",
    "CancelMessage",
    "ClientMessage",
    "ErrorCode",
    "FeedbackMessage",
    "Hello",
    "ServerMessage",
    "UserMessage",
    "WireError",
    "agent_message",
    "encode_message",
    "encode_text",
    "error_message",
    "event_message",
    "feedback_ack",
    "groups_of",
    "parse_frame",
    "ready_message",
    "takeover_message",
]

PROTOCOL_VERSION: Final = 1
MAX_TOKEN_CHARS: Final = 4096
DEFAULT_SOFT_FRAME_BYTES: Final = 64 * 1024

_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

ServerMessage = dict[str, Any]
"""One server message: a JSON object whose `type` says which."""


class ErrorCode(StrEnum):
    """The stable codes of `error` messages the gateway itself sends."""

    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_MESSAGE = "invalid_message"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    DUPLICATE_ID = "duplicate_id"
    UNKNOWN_TURN = "unknown_turn"
    UNAUTHORIZED = "unauthorized"
    OVERLOADED = "overloaded"
    INTERNAL = "internal"
    TURN_TIMEOUT = "turn_timeout"
    UNAVAILABLE = "unavailable"


# Client messages


@dataclass(frozen=True, slots=True)
class Hello:
    """Authenticate with `token`, or (already authenticated) ask for `ready` again."""

    token: str | None = None


@dataclass(frozen=True, slots=True)
class UserMessage:
    """A user's turn; `id` is the client's turn id, unique within the session.

    `signals` are the client's own emotion scores (label to score in [0, 1]),
    fused with the text reading by the pipeline.
    """

    id: str
    text: str
    signals: dict[str, float] | None = None


@dataclass(frozen=True, slots=True)
class FeedbackMessage:
    """The user's rating of a reply: 1 (worst) to 5 (best)."""

    turn_id: str
    score: int


@dataclass(frozen=True, slots=True)
class CancelMessage:
    """Stop the reply in flight, if there is one."""


ClientMessage = Hello | UserMessage | FeedbackMessage | CancelMessage

# type -> (required fields, optional fields), besides "type" itself.
_FIELDS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "hello": ((), ("token",)),
    "user_message": (("id", "text"), ("signals",)),
    "feedback": (("turn_id", "score"), ()),
    "cancel": ((), ()),
}


def parse_frame(frame: str | bytes, *, max_bytes: int = DEFAULT_SOFT_FRAME_BYTES) -> ClientMessage:
    """Parse one client frame (text frames arrive as `str`, binary as `bytes`).

    Raises `WireError` (and nothing else) for a frame over `max_bytes`, a
    binary frame, text that is not a JSON object, an unknown `type`, or a
    missing, unknown or invalid field.
    """
    size = len(frame) if isinstance(frame, bytes) else _utf8_size(frame, max_bytes)
    if size > max_bytes:
        raise WireError(ErrorCode.TOO_LARGE, f"frame exceeds {max_bytes} bytes")
    if isinstance(frame, bytes):
        raise WireError(ErrorCode.BAD_JSON, "binary frames are not accepted; send JSON text")
    data = _load_object(frame)
    kind = data.get("type")
    if "type" not in data:
        raise WireError(ErrorCode.INVALID_MESSAGE, "missing field 'type'")
    if not isinstance(kind, str):
        raise WireError(ErrorCode.INVALID_MESSAGE, "field 'type' must be a string")
    if kind not in _FIELDS:
        raise WireError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {_quote(kind)}")
    _check_fields(kind, data)
    if kind == "hello":
        return _parse_hello(data)
    if kind == "user_message":
        return _parse_user_message(data)
    if kind == "feedback":
        return _parse_feedback(data)
    return CancelMessage()


def _utf8_size(text: str, limit: int) -> int:
    if len(text) > limit:  # every character takes at least one byte
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _load_object(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        reason = "duplicate key in an object" if "duplicate key" in str(exc) else "not valid JSON"
        raise WireError(ErrorCode.BAD_JSON, f"frame is {reason}") from None
    if not isinstance(data, dict):
        raise WireError(ErrorCode.BAD_JSON, "frame must be a JSON object")
    return data


def _quote(value: str, limit: int = 40) -> str:
    shown = value if len(value) <= limit else value[:limit] + "..."
    return ascii(shown)


def _check_fields(kind: str, data: dict[str, Any]) -> None:
    required, optional = _FIELDS[kind]
    for name in sorted(data):
        if name != "type" and name not in required and name not in optional:
            raise WireError(ErrorCode.INVALID_MESSAGE, f"unknown field {_quote(name)} in {kind}")
    for name in required:
        if name not in data:
            raise WireError(ErrorCode.INVALID_MESSAGE, f"missing field '{name}' in {kind}")


def _invalid(kind: str, name: str, must: str) -> WireError:
    return WireError(ErrorCode.INVALID_MESSAGE, f"field '{name}' of {kind} {must}")


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_id(kind: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise _invalid(kind, name, "must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    return value


def _parse_hello(data: dict[str, Any]) -> Hello:
    token = data.get("token")
    if token is None:
        return Hello()
    if not isinstance(token, str) or not token:
        raise _invalid("hello", "token", "must be a non-empty string")
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise _invalid("hello", "token", f"must be ASCII of at most {MAX_TOKEN_CHARS} characters")
    return Hello(token=token)


def _parse_user_message(data: dict[str, Any]) -> UserMessage:
    turn_id = _parse_id("user_message", "id", data["id"])
    text = data["text"]
    if not isinstance(text, str):
        raise _invalid("user_message", "text", "must be a string")
    if not text.strip():
        raise _invalid("user_message", "text", "must not be empty or blank")
    if len(text) > MAX_TEXT_CHARS:
        raise _invalid("user_message", "text", f"must be at most {MAX_TEXT_CHARS} characters")
    if not _valid_unicode(text):
        raise _invalid("user_message", "text", "must be valid Unicode (no lone surrogates)")
    return UserMessage(id=turn_id, text=text, signals=_parse_signals(data.get("signals")))


def _parse_signals(value: Any) -> dict[str, float] | None:
    """`null` or an object of 1-28 GoEmotions labels, each with a score in [0, 1]."""
    if value is None:
        return None
    if not isinstance(value, dict) or not 1 <= len(value) <= len(LABELS):
        raise _invalid("user_message", "signals", f"must be an object of 1-{len(LABELS)} entries")
    signals: dict[str, float] = {}
    for label, score in value.items():
        if label not in LABELS:
            raise _invalid(
                "user_message", "signals", f"has {_quote(label)}, which is not a GoEmotions label"
            )
        number = isinstance(score, int | float) and not isinstance(score, bool)
        if not number or not 0.0 <= score <= 1.0:  # NaN fails the comparison
            raise _invalid("user_message", "signals", f"must give {label} a number from 0 to 1")
        signals[label] = float(score)
    return signals


def _parse_feedback(data: dict[str, Any]) -> FeedbackMessage:
    turn_id = _parse_id("feedback", "turn_id", data["turn_id"])
    score = data["score"]
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        raise _invalid("feedback", "score", "must be an integer from 1 to 5")
    return FeedbackMessage(turn_id=turn_id, score=score)


# Server messages


def ready_message(session_id: str, user_id: str, *, resumed: bool | None = None) -> ServerMessage:
    """`resumed` only for a client that asked to resume a session: whether it was."""
    message: ServerMessage = {
        "type": "ready",
        "session_id": session_id,
        "user_id": user_id,
        "protocol": PROTOCOL_VERSION,
    }
    if resumed is not None:
        message["resumed"] = resumed
    return message


def error_message(
    code: str, message: str, *, turn_id: str | None = None, retry_after_ms: int | None = None
) -> ServerMessage:
    """An `error` message; `turn_id` only when the error concerns one turn,
    `retry_after_ms` only when trying again later may succeed."""
    result: ServerMessage = {"type": "error", "code": str(code), "message": message}
    if turn_id is not None:
        result["turn_id"] = turn_id
    if retry_after_ms is not None:
        result["retry_after_ms"] = retry_after_ms
    return result


def feedback_ack(turn_id: str) -> ServerMessage:
    return {"type": "feedback_ack", "turn_id": turn_id}


def takeover_message(agent: str, *, active: bool) -> ServerMessage:
    """A person joined the conversation (`active`), or left it to the bot again."""
    return {"type": "takeover", "agent": agent, "active": active}


def agent_message(agent: str, message_id: str, text: str) -> ServerMessage:
    """What the person who took the conversation over says."""
    return {"type": "agent_message", "id": message_id, "agent": agent, "text": text}


def event_message(event: Event) -> ServerMessage | None:
    """The server message for a bus event, or None for events clients never see."""
    match event:
        case EmotionRead(turn_id=turn_id, reading=r):
            return {
                "type": "emotion",
                "turn_id": turn_id,
                "dominant": r.dominant,
                "labels": list(r.present()),
                "groups": list(r.groups) or groups_of(r.present()),
                "scores": dict(r.scores),
                "valence": r.valence,
                "arousal": r.arousal,
                "intensity": r.intensity,
                "model": r.model,
            }
        case DecisionMade(turn_id=turn_id, decision=d):
            return {
                "type": "decision",
                "turn_id": turn_id,
                "action": d.action.value,
                "strategy": d.strategy.value,
                "tone": d.tone.value,
                "policy": d.policy,
                "reasons": list(d.reasons),
                "confidence": d.confidence,
                "abstained": list(d.abstained),
            }
        case ReplyStarted(turn_id=turn_id, generator=generator):
            return {"type": "reply_start", "turn_id": turn_id, "generator": generator}
        case ReplyDelta(turn_id=turn_id, seq=seq, text=text):
            return {"type": "reply_delta", "turn_id": turn_id, "seq": seq, "text": text}
        case ReplyEnded():
            return {
                "type": "reply_end",
                "turn_id": event.turn_id,
                "text": event.text,
                "interrupted": event.interrupted,
                "generator": event.generator,
                "ttft_ms": _finite(event.ttft_ms),
                "total_ms": _finite(event.total_ms),
                "stages": {name: _finite(ms) for name, ms in event.stages.items()},
            }
        case Handoff(turn_id=turn_id, reason=reason):
            return {"type": "handoff", "turn_id": turn_id, "reason": reason}
        case TurnFailed(turn_id=turn_id, code=code, message=message):
            return error_message(code, message, turn_id=turn_id)
        case _:
            return None


def groups_of(labels: tuple[str, ...]) -> list[str]:
    """The Ekman-7 groups of the labels, in Ekman order, for models that leave them implied."""
    present = {EKMAN_OF[label] for label in labels}
    return [group for group in EKMAN if group in present]


def _finite(value: float) -> float | None:
    return value if value - value == 0.0 else None  # inf - inf and nan - nan are nan


def encode_text(message: ServerMessage) -> str:
    """Compact JSON for a text frame; escapes what UTF-8 cannot carry (lone surrogates)."""
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if text.isascii() or _valid_unicode(text):
        return text
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def encode_message(message: ServerMessage) -> bytes:
    """`encode_text` as UTF-8 bytes."""
    return encode_text(message).encode("utf-8")


# One session's turn bookkeeping
