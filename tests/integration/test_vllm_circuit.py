"""The vLLM client's circuit breaker and lifecycle, against the fake vLLM server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agent.errors import GeneratorBroke, GeneratorUnavailable
from agent.generation.breaker import BreakerState
from agent.generation.vllm import VllmGenerator
from tests.support.fake_vllm import FakeVllm, Script
from tests.support.generation import plain_messages
from tests.support.vllm_client import (
    HANG,
    TEXT,
    circuit,
    collect,
    collect_until_error,
    settings,
    vllm_server,
)
from tests.support.waiting import eventually


@pytest.fixture
async def server() -> AsyncIterator[FakeVllm]:
    async with vllm_server() as fake:
        yield fake


# -- the circuit breaker ---------------------------------------------------------------


async def test_the_circuit_opens_after_failures_and_recovers(server: FakeVllm) -> None:
    server.default = Script(status=503)
    config = settings(server.base_url, retries=0, breaker_failures=3, breaker_reset_s=0.3)
    async with VllmGenerator(config, build_messages=plain_messages) as client:
        for _ in range(3):
            with pytest.raises(GeneratorUnavailable, match="HTTP 503"):
                await collect(client)
        assert circuit(client) is BreakerState.OPEN
        for _ in range(5):
            with pytest.raises(GeneratorUnavailable, match="circuit open"):
                await collect(client)
        assert len(server.requests) == 3  # nothing reached the server while open

        server.default = Script()
        await asyncio.sleep(0.3)
        assert circuit(client) is BreakerState.HALF_OPEN
        assert "".join(await collect(client)) == TEXT
        assert circuit(client) is BreakerState.CLOSED
        assert "".join(await collect(client)) == TEXT
    assert len(server.requests) == 5


async def test_a_failed_trial_opens_the_circuit_again(server: FakeVllm) -> None:
    server.default = Script(status=500)
    config = settings(server.base_url, retries=0, breaker_failures=2, breaker_reset_s=0.2)
    async with VllmGenerator(config, build_messages=plain_messages) as client:
        for _ in range(2):
            with pytest.raises(GeneratorUnavailable, match="HTTP 500"):
                await collect(client)
        await asyncio.sleep(0.2)
        with pytest.raises(GeneratorUnavailable, match="HTTP 500"):
            await collect(client)  # the trial
        with pytest.raises(GeneratorUnavailable, match="circuit open"):
            await collect(client)
    assert len(server.requests) == 3


async def test_half_open_lets_one_trial_through(server: FakeVllm) -> None:
    server.default = Script(status=503)
    config = settings(
        server.base_url,
        first_token_timeout_s=2.0,
        retries=0,
        breaker_failures=1,
        breaker_reset_s=0.1,
    )
    async with VllmGenerator(config, build_messages=plain_messages) as client:
        with pytest.raises(GeneratorUnavailable, match="HTTP 503"):
            await collect(client)
        await asyncio.sleep(0.1)
        server.default = Script(first_token_delay=0.1)  # within first_token_timeout_s
        trial = asyncio.create_task(collect(client))
        await eventually(lambda: len(server.requests) == 2, within=HANG)
        with pytest.raises(GeneratorUnavailable, match="circuit open"):
            await collect(client)
        assert "".join(await trial) == TEXT
        assert circuit(client) is BreakerState.CLOSED


async def test_failures_mid_stream_count_towards_the_circuit(server: FakeVllm) -> None:
    server.default = Script(truncate_after=1)
    config = settings(server.base_url, breaker_failures=2)
    async with VllmGenerator(config, build_messages=plain_messages) as client:
        for _ in range(2):
            _, error = await collect_until_error(client)
            assert isinstance(error, GeneratorBroke)
        with pytest.raises(GeneratorUnavailable, match="circuit open"):
            await collect(client)


async def test_bad_requests_do_not_open_the_circuit(server: FakeVllm) -> None:
    server.default = Script(status=400)
    config = settings(server.base_url, breaker_failures=2)
    async with VllmGenerator(config, build_messages=plain_messages) as client:
        for _ in range(4):
            with pytest.raises(GeneratorUnavailable, match="HTTP 400"):
                await collect(client)
        assert circuit(client) is BreakerState.CLOSED
    assert len(server.requests) == 4


# -- lifecycle ------------------------------------------------------------


async def test_the_client_must_be_entered_and_is_not_reentrant(server: FakeVllm) -> None:
    client = VllmGenerator(settings(server.base_url), build_messages=plain_messages)
    with pytest.raises(RuntimeError, match="enter"):
        await collect(client)
    async with client:
        with pytest.raises(RuntimeError, match="reentrant"):
            await client.__aenter__()
    async with client:  # reusable
        assert "".join(await collect(client)) == TEXT
