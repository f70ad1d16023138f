"""What a worker remembers about a session between its turns."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from agent.dialogue.learning import Decided
from agent.values import ConversationMood, Exchange, HistorySummary

__all__ = ["CancelledTurns", "SessionCache", "SessionState"]


@dataclass(slots=True)
class SessionState:
    """The conversation so far (bounded), its mood, and the user's history as of session start.

    `last_seq` says which turn the cached conversation ends at, so a worker
    can tell when another worker answered turns in between and reload.
    `decided` keeps the last few turns' features for a learning policy, by
    turn id, so the next turn's valence and later feedback can credit them.
    """

    conversation: deque[Exchange]
    history: HistorySummary | None = None
    mood: ConversationMood = field(default_factory=ConversationMood)
    last_seq: int = 0
    decided: OrderedDict[str, Decided] = field(default_factory=OrderedDict)

    def remember(self, turn_id: str, decided: Decided, *, keep: int = 16) -> None:
        self.decided[turn_id] = decided
        while len(self.decided) > keep:
            self.decided.popitem(last=False)


@dataclass(slots=True)
class SessionCache:
    """Least-recently-used session states, at most `max_sessions` of them."""

    context_turns: int
    max_sessions: int
    _states: OrderedDict[str, SessionState] = field(default_factory=OrderedDict)

    def peek(self, session_id: str, turn_id: str) -> Decided | None:
        """A decided turn of a cached session, without touching the session's recency."""
        state = self._states.get(session_id)
        return None if state is None else state.decided.get(turn_id)

    def get(self, session_id: str) -> SessionState:
        state = self._states.pop(session_id, None)
        if state is None:
            state = SessionState(conversation=deque(maxlen=self.context_turns))
        self._states[session_id] = state
        if len(self._states) > self.max_sessions:
            self._states.popitem(last=False)
        return state

    def forget(self, session_id: str) -> None:
        """Drop a closed session's state."""
        self._states.pop(session_id, None)


@dataclass(slots=True)
class CancelledTurns:
    """Cancelled turn ids, kept per session: a barge-in holds whatever the backlog.

    At most `per_session` ids per session and `max_sessions` sessions (the least
    recently cancelled in goes first); a session's ids go when it closes, and each
    id when its turn is over.
    """

    per_session: int
    max_sessions: int
    _sessions: OrderedDict[str, OrderedDict[str, None]] = field(default_factory=OrderedDict)

    def add(self, session_id: str, turn_id: str) -> None:
        turns = self._sessions.pop(session_id, None) or OrderedDict()
        turns[turn_id] = None
        if len(turns) > self.per_session:
            turns.popitem(last=False)
        self._sessions[session_id] = turns
        if len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)

    def holds(self, session_id: str, turn_id: str) -> bool:
        turns = self._sessions.get(session_id)
        return turns is not None and turn_id in turns

    def discard(self, session_id: str, turn_id: str) -> None:
        """The turn is over: its id is not needed any more."""
        turns = self._sessions.get(session_id)
        if turns is None:
            return
        turns.pop(turn_id, None)
        if not turns:
            del self._sessions[session_id]

    def forget(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
