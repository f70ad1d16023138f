"""A worker's record of cancelled turns: per session, bounded, let go when done."""

from __future__ import annotations

from agent.dialogue.session import CancelledTurns


def test_a_cancel_is_held_until_its_turn_is_over() -> None:
    cancelled = CancelledTurns(per_session=4, max_sessions=10)
    cancelled.add("s1", "t2")
    assert cancelled.holds("s1", "t2")
    assert not cancelled.holds("s1", "t1")
    assert not cancelled.holds("s2", "t2")
    cancelled.discard("s1", "t2")
    assert not cancelled.holds("s1", "t2")


def test_each_session_keeps_its_own_newest_cancels() -> None:
    cancelled = CancelledTurns(per_session=2, max_sessions=10)
    for turn in ("t1", "t2", "t3"):
        cancelled.add("s1", turn)
    for session in ("s2", "s3", "s4"):
        cancelled.add(session, "t1")
    assert [cancelled.holds("s1", t) for t in ("t1", "t2", "t3")] == [False, True, True]


def test_the_least_recently_cancelling_session_goes_first_and_a_closed_one_at_once() -> None:
    cancelled = CancelledTurns(per_session=2, max_sessions=2)
    cancelled.add("s1", "t1")
    cancelled.add("s2", "t1")
    cancelled.add("s1", "t2")  # s1 is the more recent now
    cancelled.add("s3", "t1")
    assert cancelled.holds("s1", "t1")
    assert not cancelled.holds("s2", "t1")
    cancelled.forget("s1")
    assert not cancelled.holds("s1", "t2")
    assert cancelled.holds("s3", "t1")
