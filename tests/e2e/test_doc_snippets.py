"""Every Python snippet of the README and the client docs runs as written against a server.

The snippets talk to 127.0.0.1:8765 with a token from `TOKEN`; here the server listens
on a free port, so the address is the only thing changed before a snippet runs.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.app import Running, embedded
from agent.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/http-api.md", "docs/protocol.md")
_SNIPPET = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _snippets() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text(encoding="utf-8")
        found += [(f"{doc}#{n}", code) for n, code in enumerate(_SNIPPET.findall(text), start=1)]
    return found


@pytest.fixture(scope="module")
def snippets() -> list[tuple[str, str]]:
    return _snippets()


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Running]:
    settings = load_settings(data_dir=tmp_path, port=0, emotion_model="lexicon")
    async with embedded(settings) as running:
        yield running


def test_the_docs_have_snippets(snippets: list[tuple[str, str]]) -> None:
    assert {name.split("#")[0] for name, _ in snippets} == set(DOCS)


@pytest.mark.parametrize(("name", "code"), _snippets(), ids=[name for name, _ in _snippets()])
async def test_the_snippet_runs(app: Running, name: str, code: str) -> None:
    assert app.gateway is not None
    assert app.authority is not None
    address = f"{app.gateway.host}:{app.gateway.port}"
    env = {**os.environ, "TOKEN": app.authority.issue("alice")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code.replace("127.0.0.1:8765", address),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, f"{name}:\n{err.decode()}"
    assert out.strip(), f"{name} printed nothing"
