"""What staff see of a session's turns, gathered from the turn's events. Pure.

A turn's summary is ready when its reply ends (or it fails): the user's message
(redacted when it was noted), the reply, the reading and the decision in brief,
and the handoff reason when the worker asked for a person.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.events import (
    Channel,
    DecisionMade,
    EmotionRead,
    Handoff,
    ReplyEnded,
    TurnFailed,
    TurnSummary,
)
from agent.gateway.session import ReplyEvent

__all__ = ["TurnNotes"]


@dataclass(slots=True)
class _Note:
    text: str
    emotion: EmotionRead | None = None
    decision: DecisionMade | None = None
    handoff: str | None = None


class TurnNotes:
    """One session's turns in flight, as far as staff are concerned."""

    __slots__ = ("_channel", "_notes", "_session_id", "_tenant", "_user_id")

    def __init__(self, *, session_id: str, user_id: str, tenant: str, channel: Channel) -> None:
        self._session_id = session_id
        self._user_id = user_id
        self._tenant = tenant
        self._channel = channel
        self._notes: dict[str, _Note] = {}

    def started(self, turn_id: str, redacted_text: str) -> None:
        self._notes[turn_id] = _Note(redacted_text)

    def forget(self, turn_id: str) -> None:
        """A turn over without an end of its own (withdrawn, or given up on): no summary."""
        self._notes.pop(turn_id, None)

    def observe(self, event: ReplyEvent, *, now: float) -> TurnSummary | None:
        """Note the event; the turn's summary once the event ends the turn."""
        note = self._notes.get(event.turn_id)
        if note is None:
            return None
        match event:
            case EmotionRead():
                note.emotion = event
            case DecisionMade():
                note.decision = event
            case Handoff():
                reasons = note.decision.decision.reasons if note.decision else ()
                note.handoff = "; ".join(reasons)[:2000]
            case ReplyEnded() | TurnFailed():
                del self._notes[event.turn_id]
                return self._summary(event, note, now)
        return None

    def _summary(self, end: ReplyEnded | TurnFailed, note: _Note, now: float) -> TurnSummary:
        reading = note.emotion.reading if note.emotion else None
        decision = note.decision.decision if note.decision else None
        ended = end if isinstance(end, ReplyEnded) else None
        return TurnSummary(
            session_id=self._session_id,
            user_id=self._user_id,
            tenant=self._tenant,
            channel=self._channel,
            turn_id=end.turn_id,
            text=note.text,
            reply=ended.text if ended else "",
            interrupted=ended.interrupted if ended else False,
            generator=ended.generator if ended else "",
            dominant=reading.dominant if reading else "neutral",
            valence=reading.valence if reading else 0.0,
            arousal=reading.arousal if reading else 0.0,
            action=decision.action if decision else None,
            strategy=decision.strategy if decision else None,
            policy=decision.policy if decision else None,
            handoff=note.handoff,
            error=end.code if isinstance(end, TurnFailed) else None,
            at=now,
        )
