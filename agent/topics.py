"""The versioned topic names of the event bus.

One topic per session and direction keeps a session's events in order (MQTT
orders messages per topic and publisher) and lets a gateway subscribe to just
the sessions it serves.
"""

from __future__ import annotations

__all__ = [
    "ALL_CANCELS",
    "ALL_FEEDBACK",
    "ALL_TURNS",
    "PREFIX",
    "cancel",
    "feedback",
    "reply",
    "session_of",
    "turn",
]

PREFIX = "hl/v1"

ALL_TURNS = f"{PREFIX}/turn/+"
ALL_FEEDBACK = f"{PREFIX}/feedback/+"
ALL_CANCELS = f"{PREFIX}/cancel/+"


def turn(session_id: str) -> str:
    return f"{PREFIX}/turn/{session_id}"


def reply(session_id: str) -> str:
    return f"{PREFIX}/reply/{session_id}"


def feedback(session_id: str) -> str:
    return f"{PREFIX}/feedback/{session_id}"


def cancel(session_id: str) -> str:
    return f"{PREFIX}/cancel/{session_id}"


def session_of(topic: str) -> str:
    """The session id, the last level of any session topic."""
    return topic.rsplit("/", 1)[-1]
