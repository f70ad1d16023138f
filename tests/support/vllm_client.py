"""The vLLM client's test helpers: its settings, a fake vLLM server, collecting a reply.

Timeouts are tens of milliseconds here; `HANG` only keeps a broken test from hanging
and nothing asserts on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

from agent.generation.base import GenerationRequest, Generator
from agent.generation.breaker import BreakerState
from agent.generation.vllm import VllmGenerator, VllmSettings
from tests.support.fake_vllm import FakeVllm
from tests.support.generation import plain_request

__all__ = [
    "HANG",
    "MODEL",
    "TEXT",
    "circuit",
    "collect",
    "collect_until_error",
    "settings",
    "vllm_server",
]

MODEL = "Qwen/Qwen2.5-7B-Instruct"
HANG = 10.0
TEXT = "Hello, how are you?"


def settings(base_url: str, **overrides: Any) -> VllmSettings:
    values: dict[str, Any] = {
        "base_url": base_url,
        "model": MODEL,
        "connect_timeout_s": 1.0,
        "first_token_timeout_s": 0.2,
        "between_tokens_timeout_s": 0.2,
        "total_timeout_s": 5.0,
        "retries": 2,
        "retry_backoff_s": 0.01,
        "breaker_failures": 3,
        "breaker_reset_s": 0.3,
    }
    return VllmSettings(**(values | overrides))


@asynccontextmanager
async def vllm_server() -> AsyncIterator[FakeVllm]:
    """A fake vLLM server for `MODEL`, for a fixture of the test module."""
    async with FakeVllm(model=MODEL) as fake:
        yield fake


async def collect(generator: Generator, req: GenerationRequest | None = None) -> list[str]:
    pieces: list[str] = []
    async with asyncio.timeout(HANG):
        stream = await generator.open(req or plain_request())
        assert stream.answered_by == "vllm"
        async with aclosing(stream):
            async for piece in stream:
                pieces.append(piece)
    return pieces


async def collect_until_error(generator: Generator) -> tuple[list[str], BaseException]:
    pieces: list[str] = []
    try:
        async with asyncio.timeout(HANG), aclosing(await generator.open(plain_request())) as stream:
            async for piece in stream:
                pieces.append(piece)
    except Exception as exc:
        return pieces, exc
    raise AssertionError(f"the stream ended without an error after {pieces}")


def circuit(client: VllmGenerator) -> BreakerState:
    """The breaker's state, read afresh (mypy would carry a narrowed property over)."""
    return client.circuit
