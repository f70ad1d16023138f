"""The OpenAI-compatible API of `heartline serve`, driven by the official `openai` package."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from agent.app import Running, embedded
from agent.config import load_settings
from agent.gateway.auth import Role

API_KEY = "acme=" + "k" * 32
WAIT_S = 10.0


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Running]:
    settings = load_settings(
        data_dir=tmp_path, port=0, token_delay=0.01, emotion_model="lexicon", api_keys=API_KEY
    )
    async with embedded(settings) as running:
        yield running


def _base_url(app: Running) -> str:
    assert app.gateway is not None
    return f"{app.gateway.http_url}/v1"


def _client(app: Running, key: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=_base_url(app), api_key=key, max_retries=0, timeout=WAIT_S)


def _token(app: Running, user: str = "alice", role: Role = Role.USER) -> str:
    assert app.authority is not None
    return app.authority.issue(user, role=role)


def _extension(model: Any) -> dict[str, Any]:
    extra = model.model_extra or {}
    found: dict[str, Any] = extra["heartline"]
    return found


async def test_models_lists_heartline(app: Running) -> None:
    async with _client(app, _token(app)) as client:
        models = await client.models.list()
    assert [model.id for model in models.data] == ["heartline"]


async def test_a_completion_is_a_turn_with_its_emotion_and_decision(app: Running) -> None:
    async with _client(app, _token(app)) as client:
        completion = await client.chat.completions.create(
            model="heartline",
            messages=[{"role": "user", "content": "This is ridiculous, I am furious!"}],
        )
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason == "stop"
    extension = _extension(completion)
    assert extension["emotion"]["dominant"] == "anger"
    assert extension["decision"]["strategy"] == "de-escalate"
    assert extension["generator"] == "template"
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


async def test_a_stream_carries_the_reading_first_and_adds_up_to_the_reply(app: Running) -> None:
    async with _client(app, _token(app)) as client:
        stream = await client.chat.completions.create(
            model="heartline",
            messages=[{"role": "user", "content": "Thank you so much, you really helped me."}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    first, *rest = chunks
    assert first.choices[0].delta.role == "assistant"
    assert _extension(first)["emotion"]["dominant"] == "gratitude"
    text = "".join(c.choices[0].delta.content or "" for c in rest if c.choices)
    assert text
    finish = next(c for c in rest if c.choices and c.choices[0].finish_reason)
    assert finish.choices[0].finish_reason == "stop"
    assert _extension(finish)["interrupted"] is False
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert len({c.id for c in chunks}) == 1


async def test_a_user_keeps_one_conversation_across_requests(app: Running) -> None:
    async with _client(app, "k" * 32) as client:

        async def ask(user: str) -> dict[str, Any]:
            completion = await client.chat.completions.create(
                model="heartline", messages=[{"role": "user", "content": "hello"}], user=user
            )
            return _extension(completion)

        first, again, other = await ask("bob"), await ask("bob"), await ask("carol")
    assert first["session_id"] == again["session_id"]
    assert other["session_id"] != first["session_id"]
    assert first["turn_id"] != again["turn_id"]


async def test_a_cancelled_stream_interrupts_its_turn(app: Running, tmp_path: Path) -> None:
    async with _client(app, _token(app, "dave")) as client:
        stream = await client.chat.completions.create(
            model="heartline",
            messages=[{"role": "user", "content": "I feel a bit lost, can you explain it all?"}],
            stream=True,
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        await stream.close()
    assert app.store is not None
    async with asyncio.timeout(WAIT_S):
        while True:
            await app.store.flush()
            with sqlite3.connect(tmp_path / "heartline.db") as db:
                rows = db.execute("SELECT interrupted FROM turns").fetchall()
            if rows:
                break
            await asyncio.sleep(0.05)
    assert rows == [(1,)]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ({"model": "gpt-4o"}, openai.NotFoundError),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, openai.BadRequestError),
        ({"messages": [{"role": "user", "content": "  "}]}, openai.BadRequestError),
        ({"user": "mallory"}, openai.PermissionDeniedError),
    ],
)
async def test_bad_requests_get_openai_errors(
    app: Running, call: dict[str, Any], error: type[openai.APIStatusError]
) -> None:
    request: dict[str, Any] = {
        "model": "heartline",
        "messages": [{"role": "user", "content": "hello"}],
        **call,
    }
    async with _client(app, _token(app)) as client:
        with pytest.raises(error) as caught:
            await client.chat.completions.create(**request)
    body = caught.value.body
    assert isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("key", ["not-a-key", "k" * 31, "a.b.c"])
async def test_a_bad_key_is_401(app: Running, key: str) -> None:
    async with _client(app, key) as client:
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()


async def test_an_operator_token_cannot_chat(app: Running) -> None:
    async with _client(app, _token(app, "dana", Role.OPERATOR)) as client:
        with pytest.raises(openai.PermissionDeniedError):
            await client.models.list()


async def test_credentials_are_checked_before_the_body(app: Running) -> None:
    async with httpx.AsyncClient(base_url=_base_url(app)) as http:
        response = await http.post("/chat/completions", json={})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
