"""The JSON document a help desk receives for a handoff (docs/handoff.md shows one).

Pure: a `HandoffRequested` and the conversation so far in, a document out. Every
text placed in it passes through `redact` once more, whoever redacted it before:
this body leaves our systems. Ids and the tenant are the caller's own keys and
go out as they are.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal, NotRequired, TypedDict

from agent.events import HandoffRequested
from agent.privacy.redaction import redact
from agent.values import EmotionReading, Exchange

__all__ = [
    "DOCUMENT_VERSION",
    "EmotionPoint",
    "HandoffDocument",
    "TranscriptEntry",
    "build_document",
    "delivery_id_for",
    "encode_document",
]

DOCUMENT_VERSION = 1

# Delivery ids are UUIDv5 names in this namespace (fixed: changing it changes every id).
_DELIVERY_NAMESPACE = uuid.UUID("4e0e4e06-a3f4-4b14-b92f-79bdeab916b7")


class TranscriptEntry(TypedDict):
    role: Literal["user", "assistant"]
    text: str
    strategy: NotRequired[str]  # assistant entries: the response strategy, when known


class EmotionPoint(TypedDict):
    entry: int  # index in `transcript` of the user message this reads
    turn_id: str | None  # the triggering turn's id; None for earlier turns
    dominant: str
    valence: float
    arousal: float
    intensity: float


class HandoffDocument(TypedDict):
    id: str
    type: Literal["handoff"]
    version: int
    created_at: str
    tenant: str
    session_id: str
    user_id: str
    turn_id: str | None
    trigger: str
    reason: str
    agent: str | None
    history_missing: bool
    transcript: list[TranscriptEntry]
    emotion_trajectory: list[EmotionPoint]


def delivery_id_for(request: HandoffRequested) -> str:
    """A delivery id derived from the request, so one request redelivered by the bus
    (at least once) is recorded, and posted, once."""
    name = "\n".join(
        (
            request.tenant,
            request.session_id,
            request.trigger,
            request.turn_id or "",
            repr(request.at),
        )
    )
    return str(uuid.uuid5(_DELIVERY_NAMESPACE, name))


def build_document(
    request: HandoffRequested,
    transcript: Sequence[Exchange],
    *,
    max_turns: int,
    history_missing: bool = False,
) -> HandoffDocument:
    """The document for `request`, with the last `max_turns` exchanges, oldest first.

    The triggering message (`request.text`) closes the transcript unless the last
    exchange already is that message (the turn was stored before the handoff).
    `history_missing` says the stored conversation could not be read.
    """
    if max_turns < 1:
        raise ValueError("max_turns must be at least 1")
    exchanges = list(transcript[-max_turns:])
    entries: list[TranscriptEntry] = []
    trajectory: list[EmotionPoint] = []
    trigger_stored = (
        request.text is not None
        and bool(exchanges)
        and redact(exchanges[-1].text) == redact(request.text)
    )
    for index, exchange in enumerate(exchanges):
        is_trigger = trigger_stored and index == len(exchanges) - 1
        reading = exchange.emotion or (request.reading if is_trigger else None)
        turn_id = request.turn_id if is_trigger else None
        _add_user(entries, trajectory, exchange.text, reading, turn_id)
        if exchange.reply:
            reply: TranscriptEntry = {"role": "assistant", "text": redact(exchange.reply)}
            if exchange.strategy is not None:
                reply["strategy"] = exchange.strategy.value
            entries.append(reply)
    if request.text is not None and not trigger_stored:
        _add_user(entries, trajectory, request.text, request.reading, request.turn_id)
    return {
        "id": delivery_id_for(request),
        "type": "handoff",
        "version": DOCUMENT_VERSION,
        "created_at": _iso(request.at),
        "tenant": request.tenant,
        "session_id": request.session_id,
        "user_id": request.user_id,
        "turn_id": request.turn_id,
        "trigger": request.trigger,
        "reason": redact(request.reason),
        "agent": request.agent,
        "history_missing": history_missing,
        "transcript": entries,
        "emotion_trajectory": trajectory,
    }


def encode_document(document: HandoffDocument) -> str:
    """Compact JSON text; its UTF-8 bytes are what is stored, signed and posted."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _add_user(
    entries: list[TranscriptEntry],
    trajectory: list[EmotionPoint],
    text: str,
    reading: EmotionReading | None,
    turn_id: str | None,
) -> None:
    if reading is not None:
        trajectory.append(
            {
                "entry": len(entries),
                "turn_id": turn_id,
                "dominant": reading.dominant,
                "valence": reading.valence,
                "arousal": reading.arousal,
                "intensity": reading.intensity,
            }
        )
    entries.append({"role": "user", "text": redact(text)})


def _iso(at: float) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. ``2026-11-25T18:03:09.738Z``."""
    stamp = datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")
