"""The gateway end to end: handshakes, bad frames, probes and a fuzz pass, over a real socket."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from agent import topics
from agent.events import (
    UserTurn,
)
from agent.gateway import (
    ConnectionLimits,
    ErrorCode,
    TokenAuthority,
)
from tests.support.gateway import (
    AUTHORITY,
    Env,
    bearer,
    closed_code,
    next_event,
    receive,
    running,
    send,
    session,
)
from tests.support.http import http_get

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


@pytest.mark.parametrize("path", ["/nope", "/ws/extra", "/healthz/x", "/static/nope.js"])
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
