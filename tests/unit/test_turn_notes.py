"""TurnNotes: what staff consoles hear of a session's turns."""

from __future__ import annotations

from agent.events import ReplyEnded, TurnSummary
from agent.gateway.summaries import TurnNotes

SESSION = "ab" * 16


def _ended(turn_id: str) -> ReplyEnded:
    return ReplyEnded(
        session_id=SESSION,
        turn_id=turn_id,
        text="Sorry about that.",
        interrupted=False,
        generator="templates",
        ttft_ms=1.0,
        total_ms=2.0,
    )


def test_a_turn_ends_in_its_summary_unless_it_was_forgotten() -> None:
    notes = TurnNotes(session_id=SESSION, user_id="u1", tenant="default", channel="ws")
    notes.started("a", "my order is late")
    notes.started("b", "hello?")
    summary = notes.observe(_ended("a"), now=1.0)
    assert isinstance(summary, TurnSummary)
    assert summary.turn_id == "a"
    notes.forget("b")  # withdrawn, or given up on: over without an end of its own
    notes.forget("never started")
    assert notes.observe(_ended("b"), now=2.0) is None
