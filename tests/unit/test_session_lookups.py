"""What a worker answers about a session a client resumes."""

from __future__ import annotations

from agent.dialogue.lookups import session_found
from agent.events import SessionLookup, UserTurn, encode
from memory.ledger import LedgerSession
from memory.records import AnsweredTurn

LOOKUP = SessionLookup(
    request_id="r1", reply_to="g1", session_id="s1", user_id="alice", tenant="default"
)


def _answered(seq: int, user: str = "alice") -> AnsweredTurn:
    return AnsweredTurn(
        turn_id=f"t{seq}",
        seq=seq,
        user_id=user,
        reply=f"reply {seq}",
        interrupted=False,
        generator="template",
    )


def _waiting(seq: int, user: str = "alice", tenant: str = "default") -> bytes:
    turn = UserTurn(
        session_id="s1",
        user_id=user,
        turn_id=f"t{seq}",
        seq=seq,
        text="hm",
        sent_at=0.0,
        tenant=tenant,
    )
    return encode(turn)


def test_the_answered_and_unfinished_turns_come_back_numbered_after_the_ledgers_last() -> None:
    # Turn 4 failed (in the ledger, not stored); turn 5 is unfinished.
    found = session_found(LOOKUP, [_answered(1), _answered(3)], LedgerSession(5, [_waiting(5)]))
    assert (found.found, found.session_id) == (True, "s1")
    assert found.last_seq == 5
    assert [(e.turn_id, e.text) for e in found.answered] == [("t1", "reply 1"), ("t3", "reply 3")]
    assert [t.turn_id for t in found.unfinished] == ["t5"]


def test_the_store_alone_numbers_a_session_the_ledger_forgot() -> None:
    found = session_found(LOOKUP, [_answered(1), _answered(2)], LedgerSession(0, []))
    assert (found.found, found.last_seq) == (True, 2)


def test_unknown_or_someone_elses_session_is_not_found() -> None:
    for answered, ledger in (
        ([], LedgerSession(0, [])),
        ([_answered(1, user="mallory")], LedgerSession(1, [])),
        ([_answered(1), _answered(2, user="mallory")], LedgerSession(2, [])),
        ([], LedgerSession(1, [_waiting(1, user="mallory")])),
        ([], LedgerSession(1, [_waiting(1, tenant="other")])),
    ):
        found = session_found(LOOKUP, answered, ledger)
        assert not found.found
        assert (found.answered, found.unfinished, found.last_seq) == ((), (), 0)
