"""The gateway's HTTP surface: every request answered, bodies bounded, errors as JSON,
the emotion API, and a fast typed error when no worker is there."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from agent.app import Running, embedded
from agent.config import load_settings
from agent.emotion.labels import EKMAN, LABELS
from agent.gateway.auth import Role
from agent.gateway.roster import Availability
from tests.support.gateway import AUTHORITY, bearer, receive, running, send

WAIT_S = 10.0


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Running]:
    settings = load_settings(data_dir=tmp_path, port=0, emotion_model="lexicon")
    async with embedded(settings) as running_app:
        yield running_app


def _http(app: Running) -> httpx.AsyncClient:
    assert app.gateway is not None
    assert app.authority is not None
    headers = {"Authorization": f"Bearer {app.authority.issue('alice')}"}
    return httpx.AsyncClient(base_url=app.gateway.http_url, headers=headers, timeout=WAIT_S)


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


# Emotion analysis


async def test_emotion_reads_each_text_in_order(app: Running) -> None:
    texts = ["I'm so happy today, my order finally arrived!", "我的订单又延迟了，我真的很生气。"]
    async with _http(app) as http:
        response = await http.post("/v1/emotion", json={"texts": texts})
    assert response.status_code == 200
    readings = response.json()["data"]
    assert [r["index"] for r in readings] == [0, 1]
    assert [r["language"] for r in readings] == ["en", "zh"]
    assert [r["dominant"] for r in readings] == ["joy", "anger"]
    for reading in readings:
        assert set(reading["scores"]) == set(LABELS)
        assert set(reading["ekman"]) == set(EKMAN)
        assert -1.0 <= reading["valence"] <= 1.0
        assert reading["model"] == "lexicon-v1+support"
    assert readings[1]["ekman"]["anger"] > readings[1]["ekman"]["joy"]


@pytest.mark.parametrize(
    "body",
    [
        {"texts": []},
        {"texts": ["x"] * 257},
        {"texts": [""]},
        {"texts": "not a list"},
        {"texts": ["ok"], "extra": 1},
        {},
    ],
)
async def test_emotion_refuses_a_bad_body(app: Running, body: dict[str, Any]) -> None:
    async with _http(app) as http:
        response = await http.post("/v1/emotion", json=body)
    assert response.status_code == 400
    assert _error(response)["type"] == "invalid_request_error"


async def test_emotion_needs_credentials(app: Running) -> None:
    assert app.gateway is not None
    async with httpx.AsyncClient(base_url=app.gateway.http_url) as http:
        response = await http.post("/v1/emotion", json={"texts": ["hi"]})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


# Every request is answered


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/healthz", 405),
        ("DELETE", "/v1/models", 405),
        ("GET", "/v1/chat/completions", 405),
        ("GET", "/nope", 404),
        ("POST", "/nope", 404),
        ("GET", "/ws", 426),
    ],
)
async def test_wrong_methods_and_unknown_paths_get_json_errors(
    app: Running, method: str, path: str, status: int
) -> None:
    async with _http(app) as http:
        response = await http.request(method, path, content=b"x")
    assert response.status_code == status
    _error(response)


async def test_bodies_are_bounded_declared_or_streamed() -> None:
    async with running(max_body_bytes=2048) as env:
        url = f"{env.gateway.http_url}/v1/emotion"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 1024

        async with httpx.AsyncClient(headers=bearer()) as http:
            declared = await http.post(url, content=b"x" * 4096)
            streamed = await http.post(url, content=chunks())
    for response in (declared, streamed):
        assert response.status_code == 413
        assert _error(response)["code"] == "body_too_large"


async def test_the_schema_and_its_docs_page_are_served(app: Running) -> None:
    async with _http(app) as http:
        schema = (await http.get("/openapi.json")).json()
        docs = await http.get("/docs")
        script = await http.get("/docs/assets/swagger-ui-bundle.js")
    for path in ("/v1/chat/completions", "/v1/models", "/v1/emotion", "/healthz"):
        assert path in schema["paths"], path
    assert docs.status_code == 200
    assert "openapi.json" in docs.text
    assert "/docs/assets/swagger-ui-bundle.js" in docs.text  # served here, not from a CDN
    assert script.status_code == 200


# No worker


async def test_with_no_worker_a_turn_is_refused_at_once() -> None:
    async with running(workers=lambda: Availability.NONE) as env:
        async with connect(env.url, additional_headers=bearer()) as ws:
            assert (await receive(ws))["type"] == "ready"
            await send(ws, type="user_message", id="t1", text="hello?")
            error = await receive(ws)
        async with httpx.AsyncClient(base_url=env.gateway.http_url, headers=bearer()) as http:
            chat = await http.post(
                "/v1/chat/completions",
                json={"model": "heartline", "messages": [{"role": "user", "content": "hi"}]},
            )
            emotion = await http.post("/v1/emotion", json={"texts": ["hi"]})
    assert (error["type"], error["code"], error["turn_id"]) == ("error", "unavailable", "t1")
    for response in (chat, emotion):
        assert response.status_code == 503
        assert _error(response)["code"] == "unavailable"


async def test_an_operator_token_opens_no_user_session() -> None:

    operator = AUTHORITY.issue("dana", role=Role.OPERATOR)
    async with running() as env, connect(env.url) as ws:
        await ws.send(json.dumps({"type": "hello", "token": operator}))
        assert (await receive(ws))["code"] == "unauthorized"


@pytest.mark.parametrize("path", ["/", "/operator", "/static/heartline.js", "/healthz", "/readyz"])
async def test_head_is_answered_like_get_without_a_body(app: Running, path: str) -> None:
    async with _http(app) as http:
        head = await http.head(path)
        get = await http.get(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
