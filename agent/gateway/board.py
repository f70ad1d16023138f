"""The live sessions of the whole deployment as staff see them, from the watch topics. Pure.

Every gateway publishes what happens in its sessions on their watch topics
(`SessionOpened`, `TurnSummary`, `SessionClosed`, and operators' `Takeover` and
`AgentMessage`); each gateway's board applies them all, so an operator on any
gateway sees every session. A session no event has touched for `stale_after`
seconds (its gateway died) is dropped by `expire`. Time comes in as `now`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from agent.events import (
    AgentMessage,
    Channel,
    Event,
    SessionClosed,
    SessionOpened,
    Takeover,
    TurnSummary,
)

__all__ = ["Board", "BoardChange", "LiveSession", "TranscriptEntry"]

TRAJECTORY_POINTS: Final = 20
TRANSCRIPT_ENTRIES: Final = 50


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One line of a session's transcript; `seq` numbers a session's entries from 1, so a
    console that reads the transcript and follows its changes can drop what it has."""

    seq: int
    role: Literal["user", "assistant", "agent"]
    text: str
    at: float
    turn_id: str | None = None
    agent: str | None = None
    dominant: str | None = None

    def view(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "seq": self.seq,
            "role": self.role,
            "text": self.text,
            "at": self.at,
        }
        for key in ("turn_id", "agent", "dominant"):
            if (value := getattr(self, key)) is not None:
                entry[key] = value
        return entry


@dataclass(slots=True)
class LiveSession:
    session_id: str
    user_id: str
    tenant: str
    channel: Channel
    opened_at: float
    last_at: float
    turns: int = 0
    mood: dict[str, Any] | None = None
    trajectory: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=TRAJECTORY_POINTS)
    )
    transcript: deque[TranscriptEntry] = field(
        default_factory=lambda: deque(maxlen=TRANSCRIPT_ENTRIES)
    )
    handoff: dict[str, Any] | None = None
    agent: str | None = None
    entries: int = 0

    def note(
        self,
        role: Literal["user", "assistant", "agent"],
        text: str,
        at: float,
        **about: str | None,
    ) -> TranscriptEntry:
        """Add an entry to the transcript, numbered after the last."""
        self.entries += 1
        entry = TranscriptEntry(self.entries, role, text, at, **about)
        self.transcript.append(entry)
        return entry

    def view(self) -> dict[str, Any]:
        """The session as the operator API shows it (without its transcript)."""
        return {
            "session_id": self.session_id,
            "user_id": self.user_id,
            "tenant": self.tenant,
            "channel": self.channel,
            "opened_at": self.opened_at,
            "last_at": self.last_at,
            "turns": self.turns,
            "mood": self.mood,
            "trajectory": list(self.trajectory),
            "handoff": self.handoff,
            "agent": self.agent,
        }

    def detail(self) -> dict[str, Any]:
        return {**self.view(), "transcript": [entry.view() for entry in self.transcript]}


@dataclass(frozen=True, slots=True)
class BoardChange:
    """What changed: a session (`session`), a session gone (`closed`), or a new entry."""

    session_id: str
    session: LiveSession | None = None
    entries: tuple[TranscriptEntry, ...] = ()

    @property
    def closed(self) -> bool:
        return self.session is None


class Board:
    __slots__ = ("_sessions", "_stale_after")

    def __init__(self, *, stale_after: float) -> None:
        self._stale_after = stale_after
        self._sessions: dict[str, LiveSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str) -> LiveSession | None:
        return self._sessions.get(session_id)

    def sessions(self) -> list[LiveSession]:
        """Every live session, the most recently active first."""
        return sorted(self._sessions.values(), key=lambda s: s.last_at, reverse=True)

    def handoffs(self) -> list[LiveSession]:
        """Sessions waiting for a person: a handoff asked for and nobody on them, oldest first."""
        waiting = [s for s in self._sessions.values() if s.handoff and s.agent is None]
        return sorted(waiting, key=lambda s: float(s.handoff["at"]) if s.handoff else 0.0)

    def apply(self, event: Event, *, now: float) -> BoardChange | None:
        """Take in one watch-topic event; what changed, if anything did."""
        match event:
            case SessionOpened():
                session = self._session(event.session_id, event, now)
                return BoardChange(session.session_id, session)
            case TurnSummary():
                return self._turn(event, now)
            case SessionClosed():
                if self._sessions.pop(event.session_id, None) is None:
                    return None
                return BoardChange(event.session_id)
            case Takeover():
                return self._takeover(event, now)
            case AgentMessage():
                return self._agent_message(event, now)
        return None

    def expire(self, *, now: float) -> list[BoardChange]:
        """Drop the sessions nothing has been heard of for `stale_after` seconds."""
        stale = [sid for sid, s in self._sessions.items() if now - s.last_at > self._stale_after]
        for session_id in stale:
            del self._sessions[session_id]
        return [BoardChange(session_id) for session_id in stale]

    def _session(
        self, session_id: str, event: SessionOpened | TurnSummary, now: float
    ) -> LiveSession:
        session = self._sessions.get(session_id)
        if session is None:
            session = LiveSession(
                session_id=session_id,
                user_id=event.user_id,
                tenant=event.tenant,
                channel=event.channel,
                opened_at=event.at if isinstance(event, SessionOpened) else now,
                last_at=now,
            )
            self._sessions[session_id] = session
        return session

    def _turn(self, summary: TurnSummary, now: float) -> BoardChange:
        session = self._session(summary.session_id, summary, now)
        session.turns += 1
        session.last_at = now
        point = {
            "turn_id": summary.turn_id,
            "at": summary.at,
            "dominant": summary.dominant,
            "valence": summary.valence,
            "arousal": summary.arousal,
        }
        session.mood = {key: point[key] for key in ("dominant", "valence", "arousal")}
        session.trajectory.append(point)
        entries = [
            session.note(
                "user", summary.text, summary.at, turn_id=summary.turn_id, dominant=summary.dominant
            )
        ]
        if summary.reply:
            entries.append(
                session.note("assistant", summary.reply, summary.at, turn_id=summary.turn_id)
            )
        if summary.handoff is not None and session.agent is None:
            session.handoff = {"reason": summary.handoff, "at": summary.at}
        return BoardChange(session.session_id, session, tuple(entries))

    def _takeover(self, event: Takeover, now: float) -> BoardChange | None:
        session = self._sessions.get(event.session_id)
        if session is None:
            return None
        session.last_at = now
        if event.active:
            session.agent, session.handoff = event.agent, None
        elif session.agent == event.agent:
            session.agent = None
        return BoardChange(session.session_id, session)

    def _agent_message(self, event: AgentMessage, now: float) -> BoardChange | None:
        session = self._sessions.get(event.session_id)
        if session is None:
            return None
        session.last_at = now
        entry = session.note("agent", event.text, event.at, agent=event.agent)
        return BoardChange(session.session_id, session, (entry,))
