"""What a worker remembers about a session between its turns."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from agent.values import ConversationMood, Exchange, HistorySummary

__all__ = ["SessionCache", "SessionState"]


@dataclass(slots=True)
class SessionState:
    """The conversation so far (bounded), its mood, and the user's history as of session start.

    `last_seq` says which turn the cached conversation ends at, so a worker
    can tell when another worker answered turns in between and reload.
    """

    conversation: deque[Exchange]
    history: HistorySummary | None = None
    mood: ConversationMood = field(default_factory=ConversationMood)
    last_seq: int = 0


@dataclass(slots=True)
class SessionCache:
    """Least-recently-used session states, at most `max_sessions` of them."""

    context_turns: int
    max_sessions: int
    _states: OrderedDict[str, SessionState] = field(default_factory=OrderedDict)

    def get(self, session_id: str) -> SessionState:
        state = self._states.pop(session_id, None)
        if state is None:
            state = SessionState(conversation=deque(maxlen=self.context_turns))
        self._states[session_id] = state
        if len(self._states) > self.max_sessions:
            self._states.popitem(last=False)
        return state
