"""The versioned topic names of the event bus.

One topic per session and direction keeps a session's events in order (MQTT
orders messages per topic and publisher) and lets a gateway subscribe to just
the sessions it serves.

* ``turn``, ``feedback``, ``cancel``: from the gateway holding a session to the workers;
* ``reply``: to that gateway, from the workers (and an operator's takeover);
* ``watch``: what happens in a session, for operator consoles on every gateway;
* ``handoff``: handoffs to tell the help desk about, for the workers;
* ``workers/<id>``: each worker's presence; ``emotion/...``: emotion analysis requests;
  ``sessions/...``: lookups of sessions that clients resume.
"""

from __future__ import annotations

__all__ = [
    "ALL_CANCELS",
    "ALL_FEEDBACK",
    "ALL_HANDOFFS",
    "ALL_TURNS",
    "ALL_WATCH",
    "ALL_WORKERS",
    "EMOTION_REQUESTS",
    "PREFIX",
    "SESSION_LOOKUPS",
    "cancel",
    "emotion_results",
    "feedback",
    "handoff",
    "reply",
    "session_found",
    "session_of",
    "turn",
    "watch",
    "worker",
]

PREFIX = "hl/v1"

ALL_TURNS = f"{PREFIX}/turn/+"
ALL_FEEDBACK = f"{PREFIX}/feedback/+"
ALL_CANCELS = f"{PREFIX}/cancel/+"
ALL_WATCH = f"{PREFIX}/watch/+"
ALL_HANDOFFS = f"{PREFIX}/handoff/+"
ALL_WORKERS = f"{PREFIX}/workers/+"
EMOTION_REQUESTS = f"{PREFIX}/emotion/requests"
SESSION_LOOKUPS = f"{PREFIX}/sessions/lookups"


def turn(session_id: str) -> str:
    return f"{PREFIX}/turn/{session_id}"


def reply(session_id: str) -> str:
    return f"{PREFIX}/reply/{session_id}"


def feedback(session_id: str) -> str:
    return f"{PREFIX}/feedback/{session_id}"


def cancel(session_id: str) -> str:
    return f"{PREFIX}/cancel/{session_id}"


def watch(session_id: str) -> str:
    return f"{PREFIX}/watch/{session_id}"


def handoff(session_id: str) -> str:
    return f"{PREFIX}/handoff/{session_id}"


def worker(worker_id: str) -> str:
    return f"{PREFIX}/workers/{worker_id}"


def emotion_results(gateway_id: str) -> str:
    return f"{PREFIX}/emotion/results/{gateway_id}"


def session_found(gateway_id: str) -> str:
    return f"{PREFIX}/sessions/found/{gateway_id}"


def session_of(topic: str) -> str:
    """The session id, the last level of any session topic."""
    return topic.rsplit("/", 1)[-1]
