"""The board of live sessions staff see: watch-topic events in, sessions and changes out."""

from __future__ import annotations

from agent.events import AgentMessage, SessionClosed, SessionOpened, Takeover, TurnSummary
from agent.gateway.board import Board
from agent.values import Action, Strategy

SID = "s" * 32


def _opened(at: float = 1.0) -> SessionOpened:
    return SessionOpened(session_id=SID, user_id="alice", tenant="acme", channel="ws", at=at)


def _turn(turn_id: str, *, handoff: str | None = None, reply: str = "Sorry!") -> TurnSummary:
    return TurnSummary(
        session_id=SID,
        user_id="alice",
        tenant="acme",
        channel="ws",
        turn_id=turn_id,
        text="where is my parcel?",
        reply=reply,
        interrupted=False,
        generator="template",
        dominant="anger",
        valence=-0.6,
        arousal=0.7,
        action=Action.HANDOFF if handoff else Action.REPLY,
        strategy=Strategy.APOLOGIZE,
        policy="rules:angry",
        handoff=handoff,
        at=5.0,
    )


def test_a_turn_updates_mood_trajectory_and_transcript() -> None:
    board = Board(stale_after=60.0)
    board.apply(_opened(), now=1.0)
    change = board.apply(_turn("t1"), now=5.0)
    assert change is not None
    assert change.session is not None
    assert [entry.role for entry in change.entries] == ["user", "assistant"]
    view = change.session.view()
    assert (view["turns"], view["mood"]["dominant"], view["last_at"]) == (1, "anger", 5.0)
    assert [point["turn_id"] for point in view["trajectory"]] == ["t1"]


def test_a_turn_of_an_unseen_session_opens_it() -> None:
    board = Board(stale_after=60.0)
    board.apply(_turn("t1"), now=5.0)
    assert [s.session_id for s in board.sessions()] == [SID]


def test_the_handoff_queue_empties_when_a_person_takes_over() -> None:
    board = Board(stale_after=60.0)
    board.apply(_opened(), now=1.0)
    board.apply(_turn("t1", handoff="rules:asks_for_human"), now=2.0)
    assert [s.session_id for s in board.handoffs()] == [SID]
    board.apply(Takeover(session_id=SID, agent="dana", active=True, at=3.0), now=3.0)
    assert board.handoffs() == []
    said = AgentMessage(session_id=SID, agent="dana", message_id="m1", text="Hi", at=4.0)
    change = board.apply(said, now=4.0)
    assert change is not None
    assert change.entries[0].view() == {
        "seq": 3,
        "role": "agent",
        "text": "Hi",
        "at": 4.0,
        "agent": "dana",
    }
    board.apply(Takeover(session_id=SID, agent="omar", active=False, at=5.0), now=5.0)
    session = board.get(SID)
    assert session is not None
    assert session.agent == "dana"  # only dana releases her takeover


def test_a_person_s_turn_has_no_assistant_entry() -> None:
    board = Board(stale_after=60.0)
    change = board.apply(_turn("t1", reply=""), now=5.0)
    assert change is not None
    assert [entry.role for entry in change.entries] == ["user"]


def test_closed_and_stale_sessions_leave() -> None:
    board = Board(stale_after=60.0)
    board.apply(_opened(), now=1.0)
    closed = board.apply(SessionClosed(session_id=SID, at=2.0), now=2.0)
    assert closed is not None
    assert closed.closed
    assert board.apply(SessionClosed(session_id=SID, at=2.0), now=2.0) is None
    board.apply(_opened(), now=10.0)
    assert board.expire(now=69.0) == []
    assert [c.session_id for c in board.expire(now=71.0)] == [SID]
    assert len(board) == 0
