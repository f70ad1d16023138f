"""TurnNotes: what staff consoles hear of a session's turns."""

from __future__ import annotations

from agent.events import TurnSummary
from agent.gateway.summaries import TurnNotes
from tests.support.events import reply_ended

SESSION = "ab" * 16


def test_a_turn_ends_in_its_summary_unless_it_was_forgotten() -> None:
    notes = TurnNotes(session_id=SESSION, user_id="u1", tenant="default", channel="ws")
    notes.started("a", "my order is late")
    notes.started("b", "hello?")
    summary = notes.observe(reply_ended(SESSION, "a"), now=1.0)
    assert isinstance(summary, TurnSummary)
    assert summary.turn_id == "a"
    notes.forget("b")  # withdrawn, or given up on: over without an end of its own
    notes.forget("never started")
    assert notes.observe(reply_ended(SESSION, "b"), now=2.0) is None
