"""Staff and people around a session, end to end on `heartline serve`: the operator API and
its console WebSocket, takeover of a live chat, and handoffs delivered to a help desk."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from agent.app import Running, embedded
from agent.config import load_settings
from agent.gateway.auth import Role
from agent.handoff import verify
from tests.support.webhook import Received, WebhookReceiver

WAIT_S = 10.0
HOOK_SECRET = "s" * 32


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as listening:
        yield listening


@pytest.fixture
async def app(tmp_path: Path, receiver: WebhookReceiver) -> AsyncIterator[Running]:
    settings = load_settings(
        data_dir=tmp_path,
        port=0,
        emotion_model="lexicon",
        token_delay=0.02,
        handoff_webhook_url=receiver.url,
        handoff_webhook_secret=HOOK_SECRET,
    )
    async with embedded(settings) as running:
        yield running


def _staff(app: Running, name: str = "dana") -> httpx.AsyncClient:
    assert app.gateway is not None
    assert app.authority is not None
    token = app.authority.issue(name, role=Role.OPERATOR)
    return httpx.AsyncClient(
        base_url=f"{app.gateway.http_url}/v1/operator",
        headers={"Authorization": f"Bearer {token}"},
        timeout=WAIT_S,
    )


async def _receive(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT_S):
        message: dict[str, Any] = json.loads(await ws.recv())
    return message


async def _until(
    ws: ClientConnection, kind: str, turn_id: str | None = None
) -> list[dict[str, Any]]:
    seen = []
    while True:
        message = await _receive(ws)
        seen.append(message)
        if message["type"] == kind and message.get("turn_id") == turn_id:
            return seen


async def _customer(app: Running, user: str = "alice") -> tuple[ClientConnection, str]:
    assert app.gateway is not None
    assert app.authority is not None
    ws = await connect(f"{app.gateway.url}?token={app.authority.issue(user)}")
    ready = await _receive(ws)
    return ws, str(ready["session_id"])


async def _say(ws: ClientConnection, turn_id: str, text: str) -> list[dict[str, Any]]:
    await ws.send(json.dumps({"type": "user_message", "id": turn_id, "text": text}))
    return await _until(ws, "reply_end", turn_id)


async def _eventually(staff: httpx.AsyncClient, path: str, check: Any) -> dict[str, Any]:
    """GET `path` until `check(body)` holds: the board follows the bus a moment later."""
    async with asyncio.timeout(WAIT_S):
        while True:
            response = await staff.get(path)
            if response.status_code == 200 and check(body := response.json()):
                return dict(body)
            await asyncio.sleep(0.02)


async def _first_request(receiver: WebhookReceiver) -> Received:
    """The help desk's first request, once it has come."""
    arrived = asyncio.Event()

    async def note(_: Received) -> None:
        arrived.set()

    receiver.on_request = note
    if not receiver.requests:
        async with asyncio.timeout(WAIT_S):
            await arrived.wait()
    return receiver.requests[0]


async def test_a_live_session_shows_its_mood_and_transcript(app: Running) -> None:
    ws, session_id = await _customer(app)
    async with ws, _staff(app) as staff:
        await _say(ws, "t1", "This is ridiculous, I am furious!")
        listed = await _eventually(staff, "/sessions", lambda b: b["sessions"])
        session = listed["sessions"][0]
        detail = (await staff.get(f"/sessions/{session_id}")).json()
    assert (session["session_id"], session["user_id"], session["channel"]) == (
        session_id,
        "alice",
        "ws",
    )
    assert session["mood"]["dominant"] == "anger"
    assert session["turns"] == 1
    assert [point["turn_id"] for point in session["trajectory"]] == ["t1"]
    roles = [entry["role"] for entry in detail["transcript"]]
    assert roles == ["user", "assistant"]
    assert detail["transcript"][0]["text"] == "This is ridiculous, I am furious!"


async def test_takeover_silences_the_bot_until_the_person_releases_it(app: Running) -> None:
    ws, session_id = await _customer(app)
    async with ws, _staff(app) as staff:
        await _say(ws, "t1", "hello")
        await _eventually(staff, "/sessions", lambda b: b["sessions"])

        taken = await staff.post(f"/sessions/{session_id}/takeover")
        assert taken.status_code == 200
        assert taken.json()["agent"] == "dana"
        assert await _receive(ws) == {"type": "takeover", "agent": "dana", "active": True}

        during = await _say(ws, "t2", "is anyone there?")
        assert [m["type"] for m in during] == ["emotion", "reply_end"]
        assert (during[-1]["generator"], during[-1]["text"]) == ("human", "")

        said = await staff.post(f"/sessions/{session_id}/messages", json={"text": "Hi, Dana here."})
        assert said.status_code == 202
        message = await _receive(ws)
        assert (message["type"], message["agent"], message["text"]) == (
            "agent_message",
            "dana",
            "Hi, Dana here.",
        )
        detail = await _eventually(
            staff,
            f"/sessions/{session_id}",
            lambda b: any(e["role"] == "agent" for e in b["transcript"]),
        )
        assert [e["role"] for e in detail["transcript"]] == ["user", "assistant", "user", "agent"]

        released = await staff.post(f"/sessions/{session_id}/release")
        assert released.json()["agent"] is None
        assert await _receive(ws) == {"type": "takeover", "agent": "dana", "active": False}
        after = await _say(ws, "t3", "thanks")
        assert after[-1]["generator"] == "template"
        assert after[-1]["text"]


async def test_a_takeover_cancels_the_reply_in_flight(app: Running) -> None:
    ws, session_id = await _customer(app)
    async with ws, _staff(app) as staff:
        await _say(ws, "t1", "hello")
        await _eventually(staff, "/sessions", lambda b: b["sessions"])
        await ws.send(json.dumps({"type": "user_message", "id": "t2", "text": "tell me more"}))
        await _until(ws, "reply_delta", "t2")
        await staff.post(f"/sessions/{session_id}/takeover")
        seen = await _until(ws, "reply_end", "t2")
    assert seen[-1]["interrupted"] is True
    assert {"type": "takeover", "agent": "dana", "active": True} in seen


async def test_takeover_rules(app: Running) -> None:
    ws, session_id = await _customer(app)
    async with ws, _staff(app) as dana, _staff(app, "omar") as omar:
        await _say(ws, "t1", "hello")
        await _eventually(dana, "/sessions", lambda b: b["sessions"])
        assert (await dana.post("/sessions/nope/takeover")).status_code == 404
        not_taken = await dana.post(f"/sessions/{session_id}/messages", json={"text": "hi"})
        assert not_taken.status_code == 409
        assert (await dana.post(f"/sessions/{session_id}/takeover")).status_code == 200
        assert (await omar.post(f"/sessions/{session_id}/takeover")).status_code == 409
        assert (await omar.post(f"/sessions/{session_id}/release")).status_code == 409
        empty = await dana.post(f"/sessions/{session_id}/messages", json={"text": ""})
        assert empty.status_code == 400


async def test_a_handoff_queues_the_session_and_reaches_the_help_desk(
    app: Running, receiver: WebhookReceiver
) -> None:
    ws, session_id = await _customer(app)
    async with ws, _staff(app) as staff:
        await _say(ws, "t1", "My order is late")
        messages = await _say(ws, "t2", "I want to talk to a real person, my email is a@b.com")
        queue = await _eventually(staff, "/handoffs", lambda b: b["sessions"])
    decision = next(m for m in messages if m["type"] == "decision")
    handoff = next(m for m in messages if m["type"] == "handoff")
    assert handoff["reason"] == "A member of our team will take over this conversation."
    waiting = queue["sessions"][0]
    assert waiting["session_id"] == session_id
    assert "asks_for_human" in waiting["handoff"]["reason"]
    request = await _first_request(receiver)
    assert verify(
        HOOK_SECRET.encode(),
        request.headers["x-heartline-signature"],
        request.body,
        now=time.time(),
    )
    document = json.loads(request.body)
    trigger = {"rules": "rule", "flow": "flow"}[decision["policy"].split(":")[0]]
    assert (document["trigger"], document["session_id"], document["user_id"]) == (
        trigger,
        session_id,
        "alice",
    )
    texts = [entry["text"] for entry in document["transcript"] if entry["role"] == "user"]
    assert texts[-1] == "I want to talk to a real person, my email is [EMAIL]"
    assert b"a@b.com" not in request.body
    assert document["emotion_trajectory"]


async def test_a_takeover_is_told_to_the_help_desk(app: Running, receiver: WebhookReceiver) -> None:
    ws, session_id = await _customer(app)
    async with ws, _staff(app) as staff:
        await _say(ws, "t1", "hello")
        await _eventually(staff, "/sessions", lambda b: b["sessions"])
        await staff.post(f"/sessions/{session_id}/takeover")
        document = json.loads((await _first_request(receiver)).body)
    assert (document["trigger"], document["agent"]) == ("takeover", "dana")


async def test_the_console_socket_sends_a_snapshot_then_changes(app: Running) -> None:
    assert app.gateway is not None
    assert app.authority is not None
    token = app.authority.issue("dana", role=Role.OPERATOR)
    console_url = f"ws://{app.gateway.host}:{app.gateway.port}/v1/operator/ws?token={token}"
    async with connect(console_url) as console:
        snapshot = await _receive(console)
        assert snapshot == {"type": "snapshot", "sessions": []}
        ws, session_id = await _customer(app)
        async with ws:
            opened = await _receive(console)
            await _say(ws, "t1", "I'm so happy today!")
            frames = [await _receive(console) for _ in range(3)]
        closed = await _receive(console)
    assert (opened["type"], opened["session"]["session_id"]) == ("session", session_id)
    assert [f["type"] for f in frames] == ["session", "transcript", "transcript"]
    assert frames[0]["session"]["mood"]["dominant"] == "joy"
    assert closed == {"type": "closed", "session_id": session_id}


async def test_the_history_spans_sessions(app: Running) -> None:
    for turn in range(2):
        ws, _ = await _customer(app, "erin")
        async with ws:
            await _say(ws, f"t{turn}", "I'm worried my card was charged twice.")
    assert app.store is not None
    await app.store.flush()
    async with _staff(app) as staff:
        history = (await staff.get("/users/erin/history")).json()
        unknown = await staff.get("/users/nobody/history")
    assert len(history["sessions"]) == 2
    assert [point["dominant"] for point in history["turns"]] == ["nervousness", "nervousness"]
    assert unknown.status_code == 404


async def test_staff_only(app: Running) -> None:
    assert app.gateway is not None
    assert app.authority is not None
    user_token = app.authority.issue("alice")
    async with httpx.AsyncClient(base_url=app.gateway.http_url) as http:
        as_user = await http.get(
            "/v1/operator/sessions", headers={"Authorization": f"Bearer {user_token}"}
        )
        anonymous = await http.get("/v1/operator/sessions")
    assert (as_user.status_code, anonymous.status_code) == (403, 401)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            f"ws://{app.gateway.host}:{app.gateway.port}/v1/operator/ws?token={user_token}"
        ):
            pytest.fail("a user token must not open the console")
    assert refused.value.response.status_code == 401


async def test_after_a_release_the_conversation_flow_starts_over(app: Running) -> None:
    ws, session_id = await _customer(app)
    async with ws, _staff(app) as staff:
        asked = await _say(ws, "t1", "I want to talk to a real person")
        assert next(m for m in asked if m["type"] == "decision")["action"] == "handoff"
        await _eventually(staff, "/handoffs", lambda b: b["sessions"])
        await staff.post(f"/sessions/{session_id}/takeover")
        await _until(ws, "takeover")
        await _say(ws, "t2", "thanks for taking over")
        await staff.post(f"/sessions/{session_id}/release")
        await _until(ws, "takeover")
        after = await _say(ws, "t3", "Where is my order?")
    decision = next(m for m in after if m["type"] == "decision")
    assert decision["action"] == "reply", decision
