"""The whole embedded process (`heartline serve`) end to end with a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from agent.app import Running, embedded
from agent.config import load_settings

WAIT_S = 10.0


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Running]:
    # The lexicon keeps these runtime tests quick; the shipped models have a test of their own.
    settings = load_settings(data_dir=tmp_path, port=0, token_delay=0.01, emotion_model="lexicon")
    async with embedded(settings) as running:
        yield running


def _url(app: Running) -> str:
    assert app.gateway is not None
    return app.gateway.url


def _token(app: Running, user: str = "alice") -> str:
    assert app.authority is not None
    return app.authority.issue(user)


async def _receive(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT_S):
        message: dict[str, Any] = json.loads(await ws.recv())
    return message


async def _until(ws: ClientConnection, kind: str, turn_id: str) -> list[dict[str, Any]]:
    """Messages up to and including `kind` for `turn_id`."""
    seen = []
    while True:
        message = await _receive(ws)
        seen.append(message)
        if message["type"] == kind and message.get("turn_id") == turn_id:
            return seen


async def _hello(ws: ClientConnection, token: str) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "hello", "token": token}))
    ready = await _receive(ws)
    assert ready["type"] == "ready"
    return ready


async def test_a_turn_streams_emotion_decision_and_reply(app: Running) -> None:
    async with connect(_url(app)) as ws:
        ready = await _hello(ws, _token(app))
        assert (ready["user_id"], ready["protocol"]) == ("alice", 1)
        await ws.send(
            json.dumps({"type": "user_message", "id": "t1", "text": "I'm furious, it broke again!"})
        )
        messages = await _until(ws, "reply_end", "t1")
    kinds = [m["type"] for m in messages]
    assert kinds[:3] == ["emotion", "decision", "reply_start"]
    emotion, decision = messages[0], messages[1]
    assert emotion["dominant"] == "anger"
    assert emotion["valence"] < 0
    assert len(emotion["scores"]) == 28
    assert (decision["action"], decision["strategy"]) == ("reply", "de-escalate")
    assert decision["policy"].startswith("rules")
    assert decision["reasons"]
    deltas = [m for m in messages if m["type"] == "reply_delta"]
    end = messages[-1]
    assert len(deltas) >= 2
    assert end["text"] == "".join(d["text"] for d in deltas)
    assert end["interrupted"] is False
    assert end["generator"] == "template"
    assert 0 < end["ttft_ms"] <= end["total_ms"]


async def test_a_strong_external_anger_signal_turns_a_neutral_text_to_anger(app: Running) -> None:
    async with connect(_url(app)) as ws:
        await _hello(ws, _token(app))
        text = "Where is my order?"
        await ws.send(json.dumps({"type": "user_message", "id": "plain", "text": text}))
        plain = (await _until(ws, "reply_end", "plain"))[0]
        frame = {"type": "user_message", "id": "voiced", "text": text, "signals": {"anger": 0.95}}
        await ws.send(json.dumps(frame))
        voiced = (await _until(ws, "reply_end", "voiced"))[0]
        await ws.send(json.dumps({**frame, "id": "bad", "signals": {"rage": 0.95}}))
        error = await _receive(ws)
    assert (plain["type"], voiced["type"]) == ("emotion", "emotion")
    assert plain["dominant"] != "anger"
    assert voiced["dominant"] == "anger"
    assert voiced["model"] == plain["model"] + "+signals"
    assert voiced["valence"] < plain["valence"]
    assert len(voiced["scores"]) == 28
    assert (error["type"], error["code"]) == ("error", "invalid_message")
    assert "'signals'" in error["message"]


async def test_barge_in_interrupts_the_reply_and_answers_the_new_message(app: Running) -> None:
    async with connect(
        _url(app), additional_headers={"Authorization": f"Bearer {_token(app)}"}
    ) as ws:
        assert (await _receive(ws))["type"] == "ready"
        await ws.send(
            json.dumps({"type": "user_message", "id": "t1", "text": "Where is my order?"})
        )
        await _until(ws, "reply_delta", "t1")
        await ws.send(json.dumps({"type": "user_message", "id": "t2", "text": "谢谢，太好了"}))
        messages = await _until(ws, "reply_end", "t2")
    first_end = next(m for m in messages if m["type"] == "reply_end" and m["turn_id"] == "t1")
    assert first_end["interrupted"] is True
    after = messages[messages.index(first_end) + 1 :]
    assert not [m for m in after if m["type"] == "reply_delta" and m["turn_id"] == "t1"]
    second_end = messages[-1]
    assert second_end["interrupted"] is False
    assert any("\u4e00" <= c <= "\u9fff" for c in second_end["text"])


async def test_feedback_is_acknowledged_and_kept(app: Running, tmp_path: Path) -> None:
    async with connect(f"{_url(app)}?token={_token(app)}") as ws:
        assert (await _receive(ws))["type"] == "ready"
        await ws.send(json.dumps({"type": "user_message", "id": "t1", "text": "thanks!"}))
        await _until(ws, "reply_end", "t1")
        await ws.send(json.dumps({"type": "feedback", "turn_id": "t1", "score": 5}))
        assert await _receive(ws) == {"type": "feedback_ack", "turn_id": "t1"}
    async with asyncio.timeout(WAIT_S):
        while True:
            with sqlite3.connect(tmp_path / "heartline.db") as db:
                rows = db.execute("SELECT score FROM feedback").fetchall()
            if rows:
                break
            await asyncio.sleep(0.05)
    assert rows == [(5,)]


async def test_a_bad_token_is_refused_at_the_handshake(app: Running) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(_url(app), additional_headers={"Authorization": "Bearer forged"}):
            pass
    assert refused.value.response.status_code == 401


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ('{"type": "shout"}', "unknown_type"),
        ('{"type": "user_message", "id": "t9"}', "invalid_message"),
        ('{"type": "feedback", "turn_id": "nope", "score": 3}', "unknown_turn"),
        (json.dumps({"type": "user_message", "id": "t9", "text": "x" * 70_000}), "too_large"),
    ],
)
async def test_bad_frames_get_their_code_and_the_session_goes_on(
    app: Running, frame: str, code: str
) -> None:
    async with connect(
        _url(app), additional_headers={"Authorization": f"Bearer {_token(app)}"}
    ) as ws:
        assert (await _receive(ws))["type"] == "ready"
        await ws.send(frame)
        error = await _receive(ws)
        assert (error["type"], error["code"]) == ("error", code)
        await ws.send(json.dumps({"type": "user_message", "id": "ok", "text": "hello"}))
        assert (await _until(ws, "reply_end", "ok"))[-1]["interrupted"] is False


async def test_a_returning_user_is_recognised_and_the_turns_are_kept(
    app: Running, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {_token(app, 'bob')}"}
    for _ in range(2):
        async with connect(_url(app), additional_headers=headers) as ws:
            assert (await _receive(ws))["type"] == "ready"
            await ws.send(json.dumps({"type": "user_message", "id": "t1", "text": "hi there"}))
            messages = await _until(ws, "reply_end", "t1")
        assert app.store is not None
        await app.store.flush()
    decision = next(m for m in messages if m["type"] == "decision")
    assert any("returning user" in reason for reason in decision["reasons"])
    with sqlite3.connect(tmp_path / "heartline.db") as db:
        count = db.execute("SELECT count(*) FROM turns").fetchone()[0]
    assert count == 2


async def test_serve_reads_emotions_with_the_shipped_models_by_default(tmp_path: Path) -> None:
    async with (
        embedded(load_settings(data_dir=tmp_path, port=0)) as running,
        connect(
            _url(running), additional_headers={"Authorization": f"Bearer {_token(running)}"}
        ) as ws,
    ):
        assert (await _receive(ws))["type"] == "ready"
        readings = {}
        for turn_id, text in (
            ("en", "I am so angry, this is outrageous!"),
            ("zh", "气死我了，太过分了！"),
        ):
            await ws.send(json.dumps({"type": "user_message", "id": turn_id, "text": text}))
            messages = await _until(ws, "reply_end", turn_id)
            readings[turn_id] = next(m for m in messages if m["type"] == "emotion")
    assert readings["en"]["model"] == "minilm-goemotions-v1+support"  # support text by default
    assert readings["en"]["dominant"] in ("anger", "annoyance")
    assert "anger" in readings["en"]["groups"]
    assert readings["zh"]["model"].startswith("smp2020-chinese")
    assert readings["zh"]["dominant"] == "anger"
    assert readings["zh"]["groups"] == ["anger"]


async def test_the_decision_cites_the_users_history(app: Running) -> None:
    assert app.store is not None
    for session in ("first", "second"):
        async with connect(_url(app)) as ws:
            await _hello(ws, _token(app))
            await ws.send(
                json.dumps({"type": "user_message", "id": session, "text": "I'm furious!"})
            )
            await _until(ws, "reply_end", session)
        await app.store.flush()
    async with connect(_url(app)) as ws:
        await _hello(ws, _token(app))
        await ws.send(json.dumps({"type": "user_message", "id": "t3", "text": "Is it fixed?"}))
        messages = await _until(ws, "decision", "t3")
    decision = messages[-1]
    assert decision["strategy"] == "apologize"
    assert any("frustrated in the last 2 sessions" in reason for reason in decision["reasons"])
    assert any(reason.startswith("returning user (2 sessions") for reason in decision["reasons"])


@pytest.mark.parametrize(
    ("text", "policy", "phrase"),
    [
        ("Honestly I just want to kill myself", "safety:self_harm", "emergency"),
        ("我真的不想活了", "safety:self_harm", "紧急"),
    ],
)
async def test_a_crisis_is_handed_off_with_a_safe_message(
    app: Running, text: str, policy: str, phrase: str
) -> None:
    async with connect(_url(app)) as ws:
        await _hello(ws, _token(app))
        await ws.send(json.dumps({"type": "user_message", "id": "c1", "text": text}))
        messages = await _until(ws, "reply_end", "c1")
    decision = next(m for m in messages if m["type"] == "decision")
    assert (decision["action"], decision["policy"]) == ("handoff", policy)
    assert text not in " ".join(decision["reasons"])
    assert phrase in messages[-1]["text"]


async def test_feedback_and_the_next_turn_teach_the_shared_bandit(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, port=0, emotion_model="lexicon")
    async with embedded(settings) as running, connect(_url(running)) as ws:
        await _hello(ws, _token(running))
        for turn_id, text in (("f1", "My parcel is late, I'm annoyed"), ("f2", "Thanks!")):
            await ws.send(json.dumps({"type": "user_message", "id": turn_id, "text": text}))
            await _until(ws, "reply_end", turn_id)
        await ws.send(json.dumps({"type": "feedback", "turn_id": "f2", "score": 5}))
        assert running.store is not None
        for _ in range(500):  # feedback is learned from, then stored, off the socket's path
            await running.store.flush()
            if _count(tmp_path / "heartline.db", "feedback"):
                break
            await asyncio.sleep(0.01)
    # Leaving merged what this worker learned into the stored, shared state.
    with sqlite3.connect(tmp_path / "heartline.db") as db:
        (state,) = db.execute("SELECT state FROM policy_states WHERE policy = 'bandit'").fetchone()
    counts = [arm["count"] for arm in json.loads(state)["stats"]]
    assert sum(counts) == 2  # f1 by the valence change at f2, f2 by the feedback


def _count(database: Path, table: str) -> int:
    with sqlite3.connect(database) as db:
        (count,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(count)


async def _session(url: str, token: str) -> str:
    """Open a session, have one turn answered, drop the connection; the session's id."""
    async with connect(url) as ws:
        session_id: str = (await _hello(ws, token))["session_id"]
        await ws.send(json.dumps({"type": "user_message", "id": "t1", "text": "Where is it?"}))
        await _until(ws, "reply_end", "t1")
    return session_id


async def test_a_resumed_session_shows_an_answered_turn_again_and_goes_on(app: Running) -> None:
    session_id = await _session(_url(app), _token(app))
    async with connect(f"{_url(app)}?resume={session_id}") as ws:
        ready = await _hello(ws, _token(app))
        assert (ready["session_id"], ready["resumed"]) == (session_id, True)
        # Sent again as if its reply had been missed: shown again from the record.
        await ws.send(json.dumps({"type": "user_message", "id": "t1", "text": "Where is it?"}))
        replayed = await _until(ws, "reply_end", "t1")
        assert [m["type"] for m in replayed] == ["reply_start", "reply_delta", "reply_end"]
        assert replayed[1]["text"] == replayed[2]["text"] != ""
        await ws.send(json.dumps({"type": "user_message", "id": "t2", "text": "Thanks!"}))
        await _until(ws, "reply_end", "t2")
    assert app.store is not None
    turns = await app.store.answered_turns(session_id, limit=10)
    assert [(t.turn_id, t.seq) for t in turns] == [("t1", 1), ("t2", 2)]  # t1 answered once
    assert turns[0].reply == replayed[2]["text"]


async def test_another_users_session_is_not_resumed(app: Running) -> None:
    session_id = await _session(_url(app), _token(app, "alice"))
    for asked in (session_id, "no-such-session", "not/an/id"):
        async with connect(f"{_url(app)}?resume={asked}") as ws:
            ready = await _hello(ws, _token(app, "mallory"))
        assert ready["resumed"] is False
        assert ready["session_id"] != session_id
