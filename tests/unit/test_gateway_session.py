"""SessionCore: a session's turn bookkeeping, events in and messages out, no event loop."""

from __future__ import annotations

from typing import TypedDict

import pytest

from agent.events import (
    AgentMessage,
    Cancel,
    Feedback,
    ReplyDelta,
    ReplyEnded,
    ReplyStarted,
    SessionFound,
    Takeover,
    TurnFailed,
    UserTurn,
)
from agent.gateway.admission import Admission, AdmissionLimits
from agent.gateway.protocol import (
    ErrorCode,
    FeedbackMessage,
    UserMessage,
    WireError,
    event_message,
)
from agent.gateway.session import SessionCore, TurnRefused
from tests.support.events import reply_ended


class Ids(TypedDict):
    session_id: str
    turn_id: str


SESSION = "ab" * 16


# The session core


def core(admission: Admission | None = None, session: str = SESSION) -> SessionCore:
    return SessionCore(session_id=session, user_id="u1", remembered_turns=3, admission=admission)


def test_turns_are_numbered_and_carry_the_session_user() -> None:
    session = core()
    cancels, first = session.user_message(UserMessage(id="a", text="one"), now=10.0)
    assert cancels == []
    assert first == UserTurn(
        session_id=SESSION, user_id="u1", turn_id="a", seq=1, text="one", sent_at=10.0
    )
    session.server_messages(
        ReplyEnded(
            session_id=SESSION,
            turn_id="a",
            text="",
            interrupted=False,
            generator="g",
            ttft_ms=0,
            total_ms=0,
        ),
        now=0,
    )
    cancels, second = session.user_message(UserMessage(id="b", text="two"), now=11.0)
    assert cancels == []
    assert second.seq == 2


def test_the_turn_leaves_the_gateway_redacted() -> None:
    said = UserMessage(id="a", text="I'm livid, call me on 07700 900123 or bob@example.com")
    _, turn = core().user_message(said, now=1.0)
    assert turn.text == "I'm livid, call me on [PHONE] or [EMAIL]"


def test_a_turn_refused_for_overload_keeps_its_id_free_and_its_barge_in_cancels() -> None:
    admission = Admission(AdmissionLimits(max_in_flight=10, max_wait_s=5.0, window_s=10.0))
    waiting, busy = core(admission), core(admission, session="cd" * 16)
    waiting.user_message(UserMessage(id="a", text="one"), now=0.0)  # no worker starts it
    busy.user_message(UserMessage(id="x", text="one"), now=0.0)
    # A worker gets to x only after 6 s: the workers are behind.
    busy.server_messages(ReplyStarted(session_id="cd" * 16, turn_id="x", generator="g"), now=6.0)

    with pytest.raises(TurnRefused) as refused:
        busy.user_message(UserMessage(id="y", text="stop, another thing"), now=6.5)
    assert (refused.value.code, refused.value.turn_id) == (ErrorCode.OVERLOADED, "y")
    assert refused.value.retry_after_ms is not None
    assert [c.turn_id for c in refused.value.cancels] == ["x"]  # the barge-in stands
    assert busy.seq == 1

    waiting.close()  # the session went: its turn is no longer counted
    # Past the window nothing says the workers are behind any more.
    _, turn = busy.user_message(UserMessage(id="y", text="stop, another thing"), now=17.0)
    assert (turn.turn_id, turn.seq) == ("y", 2)
    assert admission.in_flight == 1


def test_signals_travel_on_the_turn() -> None:
    _, turn = core().user_message(UserMessage(id="a", text="one", signals={"joy": 0.8}), now=1.0)
    assert turn.signals == {"joy": 0.8}
    _, plain = core().user_message(UserMessage(id="a", text="one"), now=1.0)
    assert plain.signals is None


def test_barge_in_cancels_the_turn_in_flight_once() -> None:
    session = core()
    session.user_message(UserMessage(id="a", text="one"), now=0)
    cancels, turn = session.user_message(UserMessage(id="b", text="two"), now=0)
    assert cancels == [Cancel(session_id=SESSION, turn_id="a", reason="barge_in")]
    assert turn.turn_id == "b"
    cancels, _ = session.user_message(UserMessage(id="c", text="three"), now=0)
    assert [c.turn_id for c in cancels] == ["b"]
    assert session.in_flight == ("a", "b", "c")


def test_client_cancel() -> None:
    session = core()
    assert session.cancel() == []
    session.user_message(UserMessage(id="a", text="one"), now=0)
    assert session.cancel() == [Cancel(session_id=SESSION, turn_id="a", reason="client")]
    assert session.cancel() == []


def test_cancel_of_one_turn_leaves_the_others() -> None:
    session = core()
    session.user_message(UserMessage(id="a", text="one"), now=0)
    assert session.cancel("other") == []
    assert [c.turn_id for c in session.cancel("a")] == ["a"]
    assert session.cancel("a") == []


def test_tenant_travels_on_turns_and_feedback() -> None:
    session = SessionCore(session_id=SESSION, user_id="u1", tenant="acme")
    _, turn = session.user_message(UserMessage(id="a", text="one"), now=0)
    assert turn.tenant == "acme"
    assert session.feedback(FeedbackMessage(turn_id="a", score=5)).tenant == "acme"


def test_a_takeover_cancels_the_bot_and_marks_the_turns_for_the_person() -> None:
    session = core()
    session.user_message(UserMessage(id="a", text="one"), now=0)
    notice, cancels = session.takeover(
        Takeover(session_id=SESSION, agent="Dana", active=True, at=1)
    )
    assert notice == {"type": "takeover", "agent": "Dana", "active": True}
    assert cancels == [Cancel(session_id=SESSION, turn_id="a", reason="takeover")]
    _, turn = session.user_message(UserMessage(id="b", text="hello?"), now=2)
    assert turn.human_agent == "Dana"
    said = AgentMessage(
        session_id=SESSION, agent="Dana", message_id="m1", text="Hi, Dana here", at=3
    )
    assert session.agent_message(said, now=3) == {
        "type": "agent_message",
        "id": "m1",
        "agent": "Dana",
        "text": "Hi, Dana here",
    }
    notice, cancels = session.takeover(
        Takeover(session_id=SESSION, agent="Dana", active=False, at=4)
    )
    assert (notice["active"], cancels) == (False, [])
    _, turn = session.user_message(UserMessage(id="c", text="thanks"), now=5)
    assert turn.human_agent is None


def test_failed_turn_is_no_longer_in_flight() -> None:
    session = core()
    session.user_message(UserMessage(id="a", text="one"), now=0)
    failed = TurnFailed(session_id=SESSION, turn_id="a", code="generation", message="m")
    assert session.server_messages(failed, now=0) == [event_message(failed)]
    assert session.in_flight == ()
    assert session.cancel() == []


def test_a_withdrawn_turn_is_over_and_never_published_again() -> None:
    admission = Admission(AdmissionLimits(max_in_flight=1, max_wait_s=5.0, window_s=10.0))
    session = core(admission)
    session.user_message(UserMessage(id="a", text="one"), now=100.0)
    session.withdraw("a")
    assert session.in_flight == ()
    assert session.redelivery_due(10.0) is None
    assert session.overdue(now=200.0, after=10.0, attempts=3) is None
    late = ReplyDelta(session_id=SESSION, turn_id="a", seq=0, text="late")
    assert session.server_messages(late, now=101.0) == []
    # The turn sent again, as a new message, has the slot the withdrawn one held.
    _, again = session.user_message(UserMessage(id="a-2", text="one"), now=101.0)
    assert again.seq == 2
    session.withdraw("b")  # not a turn in flight: nothing to do


def test_duplicate_id() -> None:
    session = core()
    session.user_message(UserMessage(id="a", text="one"), now=0)
    with pytest.raises(WireError) as caught:
        session.user_message(UserMessage(id="a", text="again"), now=0)
    assert caught.value.code is ErrorCode.DUPLICATE_ID
    assert caught.value.turn_id == "a"
    assert session.seq == 1


def test_feedback_only_for_own_turns() -> None:
    session = core()
    session.user_message(UserMessage(id="a", text="one"), now=0)
    assert session.feedback(FeedbackMessage(turn_id="a", score=1)) == Feedback(
        session_id=SESSION, user_id="u1", turn_id="a", score=1
    )
    with pytest.raises(WireError) as caught:
        session.feedback(FeedbackMessage(turn_id="zzz", score=5))
    assert caught.value.code is ErrorCode.UNKNOWN_TURN


def test_old_turn_ids_are_forgotten_past_the_bound() -> None:
    session = core()  # remembers 3
    for turn_id in "abcd":
        session.user_message(UserMessage(id=turn_id, text="x"), now=0)
    with pytest.raises(WireError):
        session.feedback(FeedbackMessage(turn_id="a", score=3))
    session.feedback(FeedbackMessage(turn_id="d", score=3))


def test_stream_events_after_the_end_are_dropped() -> None:
    session = core()
    session.user_message(UserMessage(id="a", text="one"), now=0)
    ids: Ids = {"session_id": SESSION, "turn_id": "a"}
    assert session.server_messages(ReplyDelta(**ids, seq=0, text="x"), now=0)
    ended = ReplyEnded(**ids, text="x", interrupted=True, generator="g", ttft_ms=1.0, total_ms=2.0)
    assert session.server_messages(ended, now=0) == [event_message(ended)]
    assert session.server_messages(ReplyDelta(**ids, seq=1, text="late"), now=0) == []
    assert session.server_messages(ReplyStarted(**ids, generator="g"), now=0) == []
    assert session.server_messages(ended, now=0) == []
    other = ReplyDelta(session_id=SESSION, turn_id="b", seq=0, text="y")
    assert session.server_messages(other, now=0)


def _ended(text: str, turn_id: str = "a") -> ReplyEnded:
    return reply_ended(SESSION, turn_id, text)


def _streamed(session: SessionCore, *pieces: str) -> None:
    session.server_messages(ReplyStarted(session_id=SESSION, turn_id="a", generator="g"), now=0)
    for seq, piece in enumerate(pieces):
        delta = ReplyDelta(session_id=SESSION, turn_id="a", seq=seq, text=piece)
        session.server_messages(delta, now=0)


def test_pieces_lost_at_the_end_of_a_reply_come_with_its_end() -> None:
    session = core()
    session.user_message(UserMessage(id="a", text="one"), now=0)
    _streamed(session, "Sorry ", "about ")  # "that." never arrived
    messages = session.server_messages(_ended("Sorry about that."), now=0)
    assert [(m["type"], m.get("seq"), m["text"]) for m in messages] == [
        ("reply_delta", 2, "that."),
        ("reply_end", None, "Sorry about that."),
    ]


def test_a_reply_missing_a_piece_in_the_middle_is_sent_again_whole() -> None:
    session = core()
    session.user_message(UserMessage(id="a", text="one"), now=0)
    _streamed(session, "Sorry ", "that.")  # "about " never arrived
    messages = session.server_messages(_ended("Sorry about that."), now=0)
    assert [(m["type"], m.get("text")) for m in messages] == [
        ("reply_start", None),
        ("reply_delta", "Sorry about that."),
        ("reply_end", "Sorry about that."),
    ]


def test_a_reply_whose_pieces_add_up_ends_as_it_came() -> None:
    session = core()
    session.user_message(UserMessage(id="a", text="one"), now=0)
    _streamed(session, "Sorry ", "about that.")
    assert session.server_messages(_ended("Sorry about that."), now=0) == [
        event_message(_ended("Sorry about that."))
    ]


def test_an_unanswered_turn_is_published_again_then_given_up() -> None:
    session = SessionCore(session_id=SESSION, user_id="u1")
    _, turn = session.user_message(UserMessage(id="a", text="one"), now=100.0)
    assert session.redelivery_due(10.0) == 110.0
    assert session.overdue(now=105.0, after=10.0, attempts=3) is None
    assert session.overdue(now=110.0, after=10.0, attempts=3) == turn
    assert session.overdue(now=115.0, after=10.0, attempts=3) is None
    assert session.overdue(now=120.0, after=10.0, attempts=3) == turn
    assert session.overdue(now=130.0, after=10.0, attempts=3) == "a"
    assert session.in_flight == ()
    assert session.redelivery_due(10.0) is None


def test_a_started_turn_that_goes_silent_is_published_again() -> None:
    # Its reply's end may have been lost on the way: the worker repeats it.
    session = SessionCore(session_id=SESSION, user_id="u1")
    _, turn = session.user_message(UserMessage(id="a", text="one"), now=0.0)
    session.server_messages(ReplyStarted(session_id=SESSION, turn_id="a", generator="g"), now=1.0)
    delta = ReplyDelta(session_id=SESSION, turn_id="a", seq=0, text="Sorry")
    session.server_messages(delta, now=5.0)
    assert session.redelivery_due(10.0) == 15.0
    assert session.overdue(now=14.9, after=10.0, attempts=3) is None
    assert session.overdue(now=15.0, after=10.0, attempts=3) == turn


def test_a_waiting_turn_gets_its_full_window_after_the_one_before_ends() -> None:
    session = SessionCore(session_id=SESSION, user_id="u1")
    session.user_message(UserMessage(id="a", text="one"), now=0.0)
    session.server_messages(ReplyStarted(session_id=SESSION, turn_id="a", generator="g"), now=1.0)
    session.user_message(UserMessage(id="b", text="two"), now=2.0)
    ended = ReplyEnded(
        session_id=SESSION,
        turn_id="a",
        text="",
        interrupted=True,
        generator="g",
        ttft_ms=0,
        total_ms=0,
    )
    session.server_messages(ended, now=50.0)
    assert session.redelivery_due(10.0) == 60.0


def test_an_end_without_its_stream_comes_with_the_whole_reply() -> None:
    session = core()
    session.user_message(UserMessage(id="a", text="one"), now=0)
    messages = session.server_messages(_ended("Sorry about that."), now=0)
    assert [(m["type"], m.get("text")) for m in messages] == [
        ("reply_start", None),
        ("reply_delta", "Sorry about that."),
        ("reply_end", "Sorry about that."),
    ]


def _found(
    *, answered: tuple[ReplyEnded, ...] = (), unfinished: tuple[UserTurn, ...] = ()
) -> SessionFound:
    return SessionFound(
        request_id="r1",
        session_id=SESSION,
        found=True,
        last_seq=4,
        answered=answered,
        unfinished=unfinished,
    )


def test_a_resumed_session_numbers_on_and_shows_answered_turns_again() -> None:
    session = core()
    session.resume(_found(answered=(_ended("Here it is.", turn_id="a"),)), now=0)
    replayed = session.resent("a")
    assert replayed is not None
    assert [(m["type"], m.get("text")) for m in replayed] == [
        ("reply_start", None),
        ("reply_delta", "Here it is."),
        ("reply_end", "Here it is."),
    ]
    assert session.resent("new") is None
    _, turn = session.user_message(UserMessage(id="new", text="and now?"), now=1)
    assert turn.seq == 5
    with pytest.raises(WireError) as refused:
        session.user_message(UserMessage(id="a", text="again"), now=1)
    assert refused.value.code == ErrorCode.DUPLICATE_ID
    assert session.feedback(FeedbackMessage(turn_id="a", score=5)).turn_id == "a"


def test_a_resumed_sessions_unfinished_turn_is_in_flight_here() -> None:
    waiting = UserTurn(session_id=SESSION, user_id="u1", turn_id="b", seq=4, text="hm", sent_at=0)
    session = core()
    session.resume(_found(unfinished=(waiting,)), now=0)
    assert session.in_flight == ("b",)
    assert session.resent("b") == []  # its reply is on its way
    assert session.overdue(now=20, after=10, attempts=6) == waiting  # published again
    messages = session.server_messages(_ended("Done.", turn_id="b"), now=21)
    assert [m["type"] for m in messages] == ["reply_start", "reply_delta", "reply_end"]
    assert session.in_flight == ()


def test_turns_in_flight_go_out_again_once_per_change_of_route() -> None:
    session = core()
    _, waiting = session.user_message(UserMessage(id="a", text="one"), now=10)
    assert session.stranded(route_changed=5) == []  # the change came before it
    assert session.stranded(route_changed=12) == [waiting]
    assert session.stranded(route_changed=12) == []  # once per change
    assert session.stranded(route_changed=13) == [waiting]
    session.cancel("a")
    assert session.stranded(route_changed=15) == []  # cancelled: nobody waits for it
    session.server_messages(_ended("Done."), now=16)
    assert session.stranded(route_changed=17) == []  # ended
