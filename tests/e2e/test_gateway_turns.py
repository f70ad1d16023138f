"""The gateway end to end: turns, cancels, feedback and replies between a client and the bus."""

from __future__ import annotations

import asyncio
import math
import socket
import time

import pytest
from websockets.asyncio.client import connect

from agent import topics
from agent.events import (
    MAX_TEXT_CHARS,
    Cancel,
    DecisionMade,
    EmotionRead,
    Event,
    Feedback,
    Handoff,
    ReplyDelta,
    ReplyEnded,
    ReplyStarted,
    TurnFailed,
    UserTurn,
)
from agent.gateway import (
    ConnectionLimits,
    ErrorCode,
)
from agent.values import Action, Decision, EmotionReading, Strategy, Tone
from tests.support.gateway import (
    Env,
    Ids,
    bearer,
    closed_code,
    next_event,
    receive,
    running,
    send,
    session,
)
from tests.support.waiting import eventually

# Turns, cancels and feedback on the bus


async def test_user_message_publishes_a_user_turn(env: Env) -> None:
    async with env.bus.subscribe(topics.ALL_TURNS) as turns, session(env, "dave") as (ws, sid):
        await send(ws, type="user_message", id="turn-1", text="I am so happy today")
        topic, first = await next_event(turns)
        await send(ws, type="user_message", id="turn-2", text="再见")
        _, second = await next_event(turns)
    assert topic == topics.turn(sid)
    assert isinstance(first, UserTurn)
    assert (first.session_id, first.user_id, first.turn_id, first.seq, first.text) == (
        sid,
        "dave",
        "turn-1",
        1,
        "I am so happy today",
    )
    assert first.sent_at > 0
    assert isinstance(second, UserTurn)
    assert (second.turn_id, second.seq, second.text) == ("turn-2", 2, "再见")


async def test_barge_in_cancels_before_the_next_turn(env: Env) -> None:
    async with session(env) as (ws, sid), env.bus.subscribe(f"{topics.PREFIX}/+/{sid}") as seen:
        await send(ws, type="user_message", id="m1", text="tell me a long story")
        await send(ws, type="user_message", id="m2", text="actually, stop")
        events = [await next_event(seen) for _ in range(3)]
        await send(ws, type="cancel")
        client_cancel = await next_event(seen)
    assert [(topic, type(event), event.turn_id) for topic, event in events] == [
        (topics.turn(sid), UserTurn, "m1"),
        (topics.cancel(sid), Cancel, "m1"),
        (topics.turn(sid), UserTurn, "m2"),
    ]
    cancel = events[1][1]
    assert isinstance(cancel, Cancel)
    assert cancel.reason == "barge_in"
    assert client_cancel == (
        topics.cancel(sid),
        Cancel(session_id=sid, turn_id="m2", reason="client"),
    )


async def test_no_barge_in_after_the_reply_ended(env: Env) -> None:
    async with session(env) as (ws, sid), env.bus.subscribe(f"{topics.PREFIX}/+/{sid}") as seen:
        await send(ws, type="user_message", id="m1", text="hello")
        await next_event(seen)
        await env.bus.publish(topics.reply(sid), ended(sid, "m1"))
        # Its pieces never came: the gateway sends the reply whole before its end.
        kinds = [(await receive(ws))["type"] for _ in range(3)]
        assert kinds == ["reply_start", "reply_delta", "reply_end"]
        await send(ws, type="user_message", id="m2", text="again")
        topic, event = await next_event(seen)
        # the test's own publication, and the turn's summary for staff consoles
        while topic in (topics.reply(sid), topics.watch(sid)):
            topic, event = await next_event(seen)
    assert (topic, event.turn_id) == (topics.turn(sid), "m2")


async def test_cancel_without_a_turn_in_flight_publishes_nothing(env: Env) -> None:
    async with session(env) as (ws, sid), env.bus.subscribe(topics.cancel(sid)) as cancels:
        await send(ws, type="cancel")
        await send(ws, type="hello")
        await receive(ws)  # the cancel was handled before this hello
        marker = Cancel(session_id=sid, turn_id="marker", reason="client")
        await env.bus.publish(topics.cancel(sid), marker)
        assert (await next_event(cancels))[1] == marker


async def test_feedback_is_published_and_acknowledged(env: Env) -> None:
    async with (
        env.bus.subscribe(topics.ALL_FEEDBACK) as feedback,
        session(env, "erin") as (ws, sid),
    ):
        await send(ws, type="user_message", id="t1", text="thanks")
        await send(ws, type="feedback", turn_id="t1", score=5)
        ack = await receive(ws)
        topic, event = await next_event(feedback)
    assert ack == {"type": "feedback_ack", "turn_id": "t1"}
    assert topic == topics.feedback(sid)
    assert event == Feedback(session_id=sid, user_id="erin", turn_id="t1", score=5)


# Reply events to the client


def ended(sid: str, turn_id: str, text: str = "Hello!") -> ReplyEnded:
    return ReplyEnded(
        session_id=sid,
        turn_id=turn_id,
        text=text,
        interrupted=False,
        generator="template",
        ttft_ms=2.0,
        total_ms=5.0,
        stages={"emotion": 1.0, "generation": 3.0},
    )


async def test_reply_events_reach_the_client(env: Env) -> None:
    reading = EmotionReading(
        scores={"joy": 0.8, "neutral": 0.2},
        dominant="joy",
        valence=0.7,
        arousal=0.6,
        intensity=0.8,
        model="minilm",
    )
    decision = Decision(
        action=Action.REPLY,
        strategy=Strategy.CELEBRATE,
        tone=Tone.UPBEAT,
        confidence=0.9,
        policy="rules",
        reasons=("joy",),
    )
    async with session(env) as (ws, sid):
        await send(ws, type="user_message", id="t1", text="I got the job!")
        ids: Ids = {"session_id": sid, "turn_id": "t1"}
        events: list[Event] = [
            EmotionRead(**ids, reading=reading),
            DecisionMade(**ids, decision=decision),
            Handoff(**ids, reason="asked for a human"),
            ReplyStarted(**ids, generator="template"),
            ReplyDelta(**ids, seq=0, text="Hello"),
            ReplyDelta(**ids, seq=1, text="!"),
            ended(sid, "t1"),
            TurnFailed(session_id=sid, turn_id="t2", code="generation", message="the reply failed"),
        ]
        for event in events:
            await env.bus.publish(topics.reply(sid), event)
        received = [await receive(ws) for _ in range(8)]
    assert [m["type"] for m in received] == [
        "emotion",
        "decision",
        "handoff",
        "reply_start",
        "reply_delta",
        "reply_delta",
        "reply_end",
        "error",
    ]
    assert all(m["turn_id"] == "t1" for m in received[:7])
    assert received[0]["dominant"] == "joy"
    assert received[0]["scores"] == {"joy": 0.8, "neutral": 0.2}
    assert (received[1]["strategy"], received[1]["tone"]) == ("celebrate", "upbeat")
    assert [m["text"] for m in received[4:6]] == ["Hello", "!"]
    assert received[6] == {
        "type": "reply_end",
        "turn_id": "t1",
        "text": "Hello!",
        "interrupted": False,
        "generator": "template",
        "ttft_ms": 2.0,
        "total_ms": 5.0,
        "stages": {"emotion": 1.0, "generation": 3.0},
    }
    assert received[7] == {
        "type": "error",
        "code": "generation",
        "message": "the reply failed",
        "turn_id": "t2",
    }


async def test_events_after_reply_end_are_dropped(env: Env) -> None:
    async with session(env) as (ws, sid):
        await send(ws, type="user_message", id="t1", text="hi")
        ids: Ids = {"session_id": sid, "turn_id": "t1"}
        events: list[Event] = [
            ReplyDelta(**ids, seq=0, text="Hi"),
            ended(sid, "t1", text="Hi"),
            ReplyDelta(**ids, seq=1, text=" late"),
            ReplyStarted(**ids, generator="template"),  # a takeover answering t1 again
            Handoff(**ids, reason="late"),
            Handoff(session_id=sid, turn_id="t2", reason="marker"),
        ]
        for event in events:
            await env.bus.publish(topics.reply(sid), event)
        received = [await receive(ws) for _ in range(3)]
    assert [m["type"] for m in received] == ["reply_delta", "reply_end", "handoff"]


async def test_other_sessions_replies_are_not_seen(env: Env) -> None:
    async with session(env, "alice") as (alice, a_sid), session(env, "bob") as (_, b_sid):
        secret = ReplyDelta(session_id=b_sid, turn_id="t", seq=0, text="bob's secret")
        await env.bus.publish(topics.reply(b_sid), secret)
        marker = Handoff(session_id=a_sid, turn_id="t", reason="marker")
        await env.bus.publish(topics.reply(a_sid), marker)
        assert (await receive(alice))["type"] == "handoff"


async def test_overflowing_subscription_is_overloaded_1013() -> None:
    async with (
        running(ConnectionLimits(reply_queue=2)) as env,
        session(env) as (ws, sid),
    ):
        for seq in range(10):  # the in-process bus delivers without yielding
            await env.bus.publish(
                topics.reply(sid), ReplyDelta(session_id=sid, turn_id="t", seq=seq, text="x")
            )
        while (message := await receive(ws))["type"] != "error":
            assert message["type"] == "reply_delta"
        assert message["code"] == "overloaded"
        assert await closed_code(ws) == 1013


async def test_a_client_that_reads_nothing_is_closed_overloaded_1013() -> None:
    async with running(ConnectionLimits(send_timeout_s=0.5)) as env:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", env.gateway.port))
        # max_queue=1: the client library stops reading too, once a frame is waiting
        async with connect(env.url, sock=sock, additional_headers=bearer(), max_queue=1) as ws:
            sid = (await receive(ws))["session_id"]
            text = "x" * MAX_TEXT_CHARS
            for seq in range(500):  # 8 MB: more than the sockets' buffers hold
                delta = ReplyDelta(session_id=sid, turn_id="t", seq=seq, text=text)
                await env.bus.publish(topics.reply(sid), delta)
            # No close seen by the client yet, and the session is gone from the server.
            await eventually(lambda: _open_connections(env) == 0, within=10)
            # What was sent before the close is there to read, then the close.
            assert await closed_code(ws) == 1013
        assert ws.close_reason == "overloaded: replies were not read"


def _open_connections(env: Env) -> float:
    return env.metrics.registry.get_sample_value("heartline_ws_connections") or 0.0


async def test_leaving_the_server_closes_connections_1001() -> None:
    async with running() as env:
        ws = await connect(env.url, additional_headers=bearer())
        assert (await receive(ws))["type"] == "ready"
    try:
        assert await closed_code(ws) == 1001
    finally:
        await ws.close()


async def test_an_unanswered_turn_is_published_again_then_reported() -> None:
    limits = ConnectionLimits(redeliver_after_s=0.2, redeliver_attempts=2)
    async with (
        running(limits) as env,
        env.bus.subscribe(topics.ALL_TURNS) as turns,
        session(env) as (ws, session_id),
    ):
        await send(ws, type="user_message", id="t1", text="anyone there?")
        _, first = await next_event(turns)
        _, again = await next_event(turns)
        assert again == first
        error = await receive(ws)
        assert error == {
            "type": "error",
            "code": ErrorCode.TURN_TIMEOUT.value,
            "message": error["message"],
            "turn_id": "t1",
        }
        assert session_id


async def test_a_turn_no_worker_started_goes_out_again_when_the_workers_change() -> None:
    changed = [-math.inf]
    async with (
        running(route_changed=lambda: changed[0]) as env,
        env.bus.subscribe(topics.ALL_TURNS) as turns,
        session(env) as (ws, _),
    ):
        await send(ws, type="user_message", id="t1", text="hello")
        first = await next_event(turns)
        # The worker it went to is gone (or a worker came back after none was there):
        # it goes out again at once, not after the 10 s of re-publication, and once.
        changed[0] = time.time()
        again = await next_event(turns)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5):
                await turns.get()
    assert again == first
