"""The gateway end to end: a real websockets client, the real server on port 0, a real bus."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypedDict

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agent import topics
from agent.bus import InProcessBus
from agent.bus.base import Subscription
from agent.events import (
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
    Gateway,
    GatewaySettings,
    TokenAuthority,
    serve_gateway,
)
from agent.metrics import Metrics
from agent.values import Action, Decision, EmotionReading, Strategy, Tone


class Ids(TypedDict):
    session_id: str
    turn_id: str


WAIT_S = 10.0
AUTHORITY = TokenAuthority(b"e2e-secret-" * 4)


@dataclass
class Env:
    bus: InProcessBus
    gateway: Gateway
    metrics: Metrics

    @property
    def url(self) -> str:
        return self.gateway.url


@asynccontextmanager
async def running(
    limits: ConnectionLimits | None = None, ready: Callable[[], bool] = lambda: True
) -> AsyncIterator[Env]:
    metrics = Metrics()
    settings = GatewaySettings(port=0, limits=limits or ConnectionLimits())
    async with (
        InProcessBus() as bus,
        serve_gateway(
            bus, authority=AUTHORITY, metrics=metrics, settings=settings, ready=ready
        ) as gateway,
    ):
        yield Env(bus, gateway, metrics)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with running() as environment:
        yield environment


def bearer(user_id: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {AUTHORITY.issue(user_id)}"}


async def receive(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT_S):
        message = json.loads(await ws.recv())
    assert isinstance(message, dict)
    return message


async def send(ws: ClientConnection, **fields: Any) -> None:
    await ws.send(json.dumps(fields))


async def closed_code(ws: ClientConnection) -> int | None:
    """Read until the server closes; the close code it sent."""
    async with asyncio.timeout(WAIT_S):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code


async def next_event(subscription: Subscription) -> tuple[str, Event]:
    async with asyncio.timeout(WAIT_S):
        delivery = await subscription.get()
    return delivery.topic, delivery.event


@asynccontextmanager
async def session(env: Env, user_id: str = "alice") -> AsyncIterator[tuple[ClientConnection, str]]:
    async with connect(env.url, additional_headers=bearer(user_id)) as ws:
        ready = await receive(ws)
        assert ready["type"] == "ready"
        yield ws, ready["session_id"]


async def http_get(port: int, path: str) -> tuple[int, str, bytes]:
    """Status, Content-Type and body of a plain HTTP/1.1 GET."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(WAIT_S):
            raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return status, headers.get("Content-Type", ""), body


# Handshake and authentication


async def test_header_token(env: Env) -> None:
    async with connect(env.url, additional_headers=bearer("alice")) as ws:
        ready = await receive(ws)
    assert ready["type"] == "ready"
    assert ready["user_id"] == "alice"
    assert ready["protocol"] == 1
    assert len(ready["session_id"]) == 32
    int(ready["session_id"], 16)


async def test_query_token(env: Env) -> None:
    async with connect(f"{env.url}?token={AUTHORITY.issue('bob')}") as ws:
        ready = await receive(ws)
    assert (ready["type"], ready["user_id"]) == ("ready", "bob")


async def test_hello_token(env: Env) -> None:
    async with connect(env.url) as ws:
        await send(ws, type="hello", token=AUTHORITY.issue("carol"))
        ready = await receive(ws)
    assert (ready["type"], ready["user_id"]) == ("ready", "carol")


async def test_sessions_are_distinct(env: Env) -> None:
    async with session(env) as (_, first), session(env) as (_, second):
        assert first != second


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"Authorization": "Bearer not-a-token"}, ""),
        ({"Authorization": f"Bearer {TokenAuthority(b'x' * 32).issue('alice')}"}, ""),
        ({"Authorization": "Basic YWxpY2U6cHc="}, ""),
        ({}, "?token=garbage"),
        ({}, "?token="),
    ],
)
async def test_bad_handshake_token_is_http_401(
    env: Env, headers: dict[str, str], query: str
) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(env.url + query, additional_headers=headers):
            pytest.fail("the handshake should have been refused")
    assert caught.value.response.status_code == 401


async def test_expired_handshake_token_is_http_401(env: Env) -> None:
    expired = AUTHORITY.issue("alice", ttl_s=1, now=0.0)
    with pytest.raises(InvalidStatus) as caught:
        async with connect(env.url, additional_headers={"Authorization": f"Bearer {expired}"}):
            pytest.fail("the handshake should have been refused")
    assert caught.value.response.status_code == 401


@pytest.mark.parametrize(
    "first",
    [
        {"type": "hello", "token": "forged.token.here"},
        {"type": "hello"},
        {"type": "user_message", "id": "a", "text": "let me in"},
        "not json",
    ],
)
async def test_bad_hello_is_unauthorized_and_closes_1008(env: Env, first: Any) -> None:
    async with connect(env.url) as ws:
        await ws.send(first if isinstance(first, str) else json.dumps(first))
        error = await receive(ws)
        assert (error["type"], error["code"]) == ("error", "unauthorized")
        assert await closed_code(ws) == 1008


async def test_no_hello_in_time_is_unauthorized() -> None:
    async with running(ConnectionLimits(hello_timeout_s=0.05)) as env, connect(env.url) as ws:
        error = await receive(ws)
        assert error["code"] == "unauthorized"
        assert await closed_code(ws) == 1008


async def test_hello_after_header_auth_repeats_ready(env: Env) -> None:
    async with session(env) as (ws, session_id):
        await send(ws, type="hello")
        again = await receive(ws)
        assert (again["type"], again["session_id"]) == ("ready", session_id)
        await send(ws, type="hello", token=AUTHORITY.issue("alice"))
        assert (await receive(ws))["session_id"] == session_id


async def test_hello_with_another_users_token_is_refused(env: Env) -> None:
    async with session(env, "alice") as (ws, _):
        await send(ws, type="hello", token=AUTHORITY.issue("mallory"))
        error = await receive(ws)
        assert error["code"] == "unauthorized"
        assert await closed_code(ws) == 1008


async def test_user_id_never_comes_from_the_payload(env: Env) -> None:
    async with env.bus.subscribe(topics.ALL_TURNS) as turns, session(env, "alice") as (ws, _):
        await send(ws, type="user_message", id="t1", text="hi", user_id="admin")
        assert (await receive(ws))["code"] == "invalid_message"
        await send(ws, type="user_message", id="t1", text="hi")
        _, turn = await next_event(turns)
    assert isinstance(turn, UserTurn)
    assert turn.user_id == "alice"


# Bad frames


async def test_each_bad_frame_gets_its_code_and_the_connection_survives() -> None:
    limits = ConnectionLimits(soft_frame_bytes=2048, max_frame_bytes=8192, burst=100)
    bad_frames: list[tuple[str | bytes, str]] = [
        ("this is not json", "bad_json"),
        ("[1, 2, 3]", "bad_json"),
        (b'{"type": "cancel"}', "bad_json"),
        (json.dumps({"type": "dance"}), "unknown_type"),
        (json.dumps({"type": "user_message", "id": "a"}), "invalid_message"),
        (json.dumps({"type": "user_message", "id": "a", "text": "x", "signals": {}}),
         "invalid_message"),
        (json.dumps({"type": "feedback", "turn_id": "a", "score": 9}), "invalid_message"),
        (json.dumps({"type": "user_message", "id": "a", "text": "x" * 4000}), "too_large"),
        (json.dumps({"type": "feedback", "turn_id": "nope", "score": 5}), "unknown_turn"),
    ]  # fmt: skip
    async with running(limits) as env, session(env) as (ws, session_id):
        for raw, code in bad_frames:
            await ws.send(raw)
            error = await receive(ws)
            assert (error["type"], error["code"]) == ("error", code), raw
            assert error["message"]
            await send(ws, type="hello")
            assert (await receive(ws))["session_id"] == session_id
        await send(ws, type="user_message", id="a", text="first")
        await send(ws, type="user_message", id="a", text="again")
        error = await receive(ws)
        assert (error["code"], error["turn_id"]) == ("duplicate_id", "a")
        await send(ws, type="hello")
        assert (await receive(ws))["type"] == "ready"


async def test_missing_field_message_names_the_field(env: Env) -> None:
    async with session(env) as (ws, _):
        await send(ws, type="user_message", id="a")
        error = await receive(ws)
    assert error["code"] == "invalid_message"
    assert "'text'" in error["message"]


async def test_frame_over_the_hard_cap_closes_1009() -> None:
    limits = ConnectionLimits(soft_frame_bytes=1024, max_frame_bytes=4096)
    async with running(limits) as env, session(env) as (ws, _):
        await ws.send("x" * 5000)
        assert await closed_code(ws) == 1009


async def test_rate_limited_messages_are_dropped() -> None:
    limits = ConnectionLimits(rate_per_s=0.001, burst=3)
    async with (
        running(limits) as env,
        session(env) as (ws, session_id),
        env.bus.subscribe(topics.turn(session_id)) as turns,
    ):
        for turn_id in "abcde":
            await send(ws, type="user_message", id=turn_id, text="spam")
        for turn_id in "de":
            error = await receive(ws)
            assert error["code"] == "rate_limited", turn_id
        marker = UserTurn(
            session_id=session_id, user_id="x", turn_id="marker", seq=99, text="", sent_at=0
        )
        await env.bus.publish(topics.turn(session_id), marker)
        published: list[str] = []
        while (event := (await next_event(turns))[1]) != marker:
            assert isinstance(event, UserTurn)
            published.append(event.turn_id)
    assert published == ["a", "b", "c"]


async def test_idle_connection_is_closed_1001() -> None:
    async with (
        running(ConnectionLimits(idle_timeout_s=0.05)) as env,
        session(env) as (ws, _),
    ):
        assert await closed_code(ws) == 1001
        assert ws.close_reason == "idle"


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
        assert (await receive(ws))["type"] == "reply_end"
        await send(ws, type="user_message", id="m2", text="again")
        topic, event = await next_event(seen)
        while topic == topics.reply(sid):  # the test's own publication
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
            ReplyStarted(**ids, generator="template"),
            ReplyDelta(**ids, seq=0, text="Hello"),
            ReplyDelta(**ids, seq=1, text="!"),
            ended(sid, "t1"),
            Handoff(**ids, reason="asked for a human"),
            TurnFailed(**ids, code="generation", message="the reply failed; try again"),
        ]
        for event in events:
            await env.bus.publish(topics.reply(sid), event)
        received = [await receive(ws) for _ in range(8)]
    assert [m["type"] for m in received] == [
        "emotion",
        "decision",
        "reply_start",
        "reply_delta",
        "reply_delta",
        "reply_end",
        "handoff",
        "error",
    ]
    assert all(m["turn_id"] == "t1" for m in received)
    assert received[0]["dominant"] == "joy"
    assert received[0]["scores"] == {"joy": 0.8, "neutral": 0.2}
    assert (received[1]["strategy"], received[1]["tone"]) == ("celebrate", "upbeat")
    assert [m["text"] for m in received[3:5]] == ["Hello", "!"]
    assert received[5] == {
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
        "message": "the reply failed; try again",
        "turn_id": "t1",
    }


async def test_deltas_after_reply_end_are_dropped(env: Env) -> None:
    async with session(env) as (ws, sid):
        await send(ws, type="user_message", id="t1", text="hi")
        ids: Ids = {"session_id": sid, "turn_id": "t1"}
        events: list[Event] = [
            ReplyDelta(**ids, seq=0, text="Hi"),
            ended(sid, "t1", text="Hi"),
            ReplyDelta(**ids, seq=1, text=" late"),
            Handoff(**ids, reason="marker"),
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
        running(ConnectionLimits(reply_queue=2, outbox=1)) as env,
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


async def test_leaving_the_server_closes_connections_1001() -> None:
    async with running() as env:
        ws = await connect(env.url, additional_headers=bearer())
        assert (await receive(ws))["type"] == "ready"
    try:
        assert await closed_code(ws) == 1001
    finally:
        await ws.close()


# HTTP endpoints


async def test_healthz(env: Env) -> None:
    status, content_type, body = await http_get(env.gateway.port, "/healthz")
    assert (status, body.strip()) == (200, b"ok")
    assert content_type.startswith("text/plain")


async def test_readyz_follows_the_callable() -> None:
    state = {"ready": False}
    async with running(ready=lambda: state["ready"]) as env:
        assert (await http_get(env.gateway.port, "/readyz"))[0] == 503
        state["ready"] = True
        assert (await http_get(env.gateway.port, "/readyz"))[0] == 200


async def test_readyz_is_503_when_the_check_fails() -> None:
    def broken() -> bool:
        raise RuntimeError("database gone")

    async with running(ready=broken) as env:
        status, _, body = await http_get(env.gateway.port, "/readyz")
    assert status == 503
    assert b"database" not in body


async def test_metrics(env: Env) -> None:
    async with session(env) as (ws, _):
        await ws.send("not json")
        await receive(ws)
        status, content_type, body = await http_get(env.gateway.port, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert "heartline_ws_connections 1.0" in text
    assert 'heartline_ws_frames_total{type="invalid"} 1.0' in text
    assert 'heartline_errors_total{code="bad_json"} 1.0' in text


@pytest.mark.parametrize("path", ["/", "/nope", "/ws/extra", "/healthz/x"])
async def test_unknown_paths_are_404(env: Env, path: str) -> None:
    assert (await http_get(env.gateway.port, path))[0] == 404


# Fuzz


def _mutations(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    bases = [
        json.dumps({"type": "user_message", "id": "t1", "text": "hello there"}),
        json.dumps({"type": "feedback", "turn_id": "t1", "score": 4}),
        json.dumps({"type": "cancel"}),
        json.dumps({"type": "user_message", "id": "t2", "text": "你好", "x": [1, {"y": None}]}),
    ]
    alphabet = '{}[]":,\\ 0123456789abcdefnulltrue\u00e9\u4f60\ud83d\ude00'
    frames: list[str] = []
    while len(frames) < count:
        chars = list(rng.choice(bases))
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(chars) + 1)
            match rng.randrange(4):
                case 0:
                    chars.insert(position, rng.choice(alphabet))
                case 1:
                    del chars[position : position + rng.randint(1, 5)]
                case 2 if chars:
                    chars[min(position, len(chars) - 1)] = rng.choice(alphabet)
                case _:
                    chars = chars[:position]
        frame = "".join(chars)
        if "hello" not in frame and "fuzz-end" not in frame and _encodable(frame):
            frames.append(frame)
    return frames


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


async def test_fuzzed_frames_get_typed_errors_and_the_connection_survives() -> None:
    own_codes = {code.value for code in ErrorCode}
    async with running(ConnectionLimits(burst=1000)) as env, session(env) as (ws, _):
        for frame in _mutations(seed=20240601, count=300):
            await ws.send(frame)
        await send(ws, type="feedback", turn_id="fuzz-end", score=1)
        while (message := await receive(ws)).get("turn_id") != "fuzz-end":
            assert message["type"] in {"error", "feedback_ack"}, message
            if message["type"] == "error":
                assert message["code"] in own_codes, message
        assert message["code"] == "unknown_turn"


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
