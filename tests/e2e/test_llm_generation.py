"""`heartline serve --generator vllm`: replies stream from the LLM, the templates stand in."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from agent.app import Running, embedded
from agent.config import load_settings
from agent.generation.faq_knowledge import EXAMPLE_KNOWLEDGE
from tests.support.fake_vllm import FakeVllm, Script

MODEL = "test-model"


@pytest.fixture
async def llm() -> AsyncIterator[FakeVllm]:
    async with FakeVllm(model=MODEL) as fake:
        yield fake


@pytest.fixture
async def app(tmp_path: Path, llm: FakeVllm) -> AsyncIterator[Running]:
    settings = load_settings(
        data_dir=tmp_path,
        port=0,
        emotion_model="lexicon",
        generator="vllm",
        vllm_url=llm.base_url,
        model=MODEL,
        first_token_timeout=1.0,
    )
    async with embedded(settings) as running:
        yield running


async def _turn(ws: ClientConnection, turn_id: str, text: str) -> list[dict[str, Any]]:
    await ws.send(json.dumps({"type": "user_message", "id": turn_id, "text": text}))
    messages = []
    while True:
        message = json.loads(await ws.recv())
        messages.append(message)
        if message["type"] == "reply_end":
            return messages


async def _session(app: Running) -> ClientConnection:
    assert app.gateway is not None
    assert app.authority is not None
    ws = await connect(app.gateway.url)
    await ws.send(json.dumps({"type": "hello", "token": app.authority.issue("alice")}))
    assert json.loads(await ws.recv())["type"] == "ready"
    return ws


async def test_the_reply_streams_from_the_llm_with_the_decision_in_its_prompt(
    app: Running, llm: FakeVllm
) -> None:
    llm.script(Script(tokens=("I'm so sorry. ", "Let me check ", "that order.")))
    async with await _session(app) as ws:
        messages = await _turn(ws, "t1", "My order is late and I'm furious!")
    end = messages[-1]
    assert (end["generator"], end["text"]) == ("vllm", "I'm so sorry. Let me check that order.")
    assert sum(m["type"] == "reply_delta" for m in messages) >= 2
    (request,) = llm.requests
    system, *_, user = request.body["messages"]
    assert system["role"] == "system"
    assert "de-escalat" in system["content"].lower() or "calm" in system["content"].lower()
    assert user == {"role": "user", "content": "My order is late and I'm furious!"}


async def test_pii_in_the_llms_reply_never_reaches_the_client(app: Running, llm: FakeVllm) -> None:
    llm.script(Script(tokens=("Write to ", "bob@exam", "ple.com for help. ", "Bye.")))
    async with await _session(app) as ws:
        messages = await _turn(ws, "t1", "Who can help me?")
    assert "bob@example.com" not in json.dumps(messages)
    assert messages[-1]["text"] == "Write to [EMAIL] for help. Bye."


@pytest.mark.parametrize(
    "failure",
    [Script(status=503), Script(first_token_delay=5.0)],
    ids=["server error", "no first token in time"],
)
async def test_the_templates_answer_within_the_first_token_timeout(
    app: Running, llm: FakeVllm, failure: Script
) -> None:
    llm.script(failure, failure)
    async with await _session(app) as ws:
        started = time.perf_counter()
        messages = await _turn(ws, "t1", "Where is my parcel?")
        elapsed = time.perf_counter() - started
    assert messages[-1]["generator"] == "template"
    assert messages[-1]["text"]
    assert elapsed < 1.0 + 1.0  # the timeout, its margin and the template reply


async def test_the_faq_answers_when_the_llm_cannot(llm: FakeVllm, tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, port=0, emotion_model="lexicon", generator="vllm",
        vllm_url=llm.base_url, model=MODEL, first_token_timeout=1.0,
        faq_file=EXAMPLE_KNOWLEDGE,
    )  # fmt: skip
    llm.script(Script(status=503), Script(status=503))
    async with embedded(settings) as app, await _session(app) as ws:
        messages = await _turn(ws, "t1", "I forgot my password, how do I get back in?")
    assert messages[-1]["generator"] == "faq"
    assert "password" in messages[-1]["text"].lower()
