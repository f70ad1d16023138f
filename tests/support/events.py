"""Events built the same way by the tests that only need one to exist."""

from __future__ import annotations

from agent.events import ReplyEnded

__all__ = ["reply_ended"]


def reply_ended(session_id: str, turn_id: str, text: str = "done") -> ReplyEnded:
    """A reply that ended normally, of `text`."""
    return ReplyEnded(
        session_id=session_id,
        turn_id=turn_id,
        text=text,
        interrupted=False,
        generator="g",
        ttft_ms=1,
        total_ms=1,
    )
