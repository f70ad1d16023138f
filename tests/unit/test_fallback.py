"""The fallback chain: the next generator answers when one cannot, within the first-token bound.

The chain's first generator is the real LLM stream wrapper over a scripted backend; the
last is a plain generator that always answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing

import pytest

from agent.errors import GeneratorBroke
from agent.generation.base import GenerationRequest, Generator, ReplyStream
from agent.generation.fallback import FallbackGenerator
from agent.generation.streaming import BackendFailure, LlmGenerator, StreamDeadlines
from tests.support.generation import plain_request
from tests.support.waiting import eventually

HANG = 10.0  # only keeps a broken test from hanging


class ScriptedBackend:
    """A backend double: waits, fails or yields as told, and records being closed."""

    def __init__(
        self,
        name: str,
        pieces: tuple[str, ...] = (),
        *,
        wait: float = 0.0,
        fail_before: bool = False,
        fail_after: bool = False,
    ) -> None:
        self.name = name
        self._pieces = pieces
        self._wait = wait
        self._fail_before = fail_before
        self._fail_after = fail_after
        self.started = False
        self.closed = False

    def pieces(self, request: GenerationRequest) -> AsyncGenerator[str, None]:
        return self._generate()

    async def _generate(self) -> AsyncGenerator[str, None]:
        self.started = True
        try:
            await asyncio.sleep(self._wait)
            if self._fail_before:
                raise BackendFailure("server said 503")
            for piece in self._pieces:
                yield piece
            if self._fail_after:
                raise BackendFailure("stream cut")
        finally:
            self.closed = True


def llm(backend: ScriptedBackend, *, first_token_s: float = HANG) -> LlmGenerator:
    return LlmGenerator(backend, StreamDeadlines(first_token_s, HANG, HANG))


class Always:
    """The last generator of a chain: answers every turn with `pieces`."""

    def __init__(self, name: str, pieces: tuple[str, ...]) -> None:
        self.name = name
        self._pieces = pieces

    async def open(self, request: GenerationRequest) -> ReplyStream:
        return ReplyStream(answered_by=self.name, pieces=self._stream())

    async def _stream(self) -> AsyncGenerator[str, None]:
        for piece in self._pieces:
            yield piece


async def _reply(chain: Generator, turn_id: str = "t1") -> tuple[str, str]:
    """The reply's text and who answered it."""
    request = plain_request(turn_id=turn_id)
    async with asyncio.timeout(HANG), aclosing(await chain.open(request)) as stream:
        return "".join([piece async for piece in stream]), stream.answered_by


async def test_the_first_generator_answers_when_it_can() -> None:
    primary = llm(ScriptedBackend("llm", ("Hel", "lo")))
    chain = FallbackGenerator([primary, Always("templates", ("T",))])
    assert await _reply(chain) == ("Hello", "llm")
    assert chain.name == "llm+templates"


@pytest.mark.parametrize(
    "primary",
    [
        ScriptedBackend("llm", fail_before=True),
        ScriptedBackend("llm", ()),  # ended without a token
        ScriptedBackend("llm", ("late",), wait=HANG),  # no first token in time
    ],
    ids=["refused", "empty", "slow"],
)
async def test_the_next_answers_within_the_first_token_bound(primary: ScriptedBackend) -> None:
    chain = FallbackGenerator(
        [llm(primary), Always("templates", ("Sorry, ", "one moment."))], first_token_timeout=0.2
    )
    started = time.perf_counter()
    assert await _reply(chain, "t2") == ("Sorry, one moment.", "templates")
    assert time.perf_counter() - started < HANG
    assert primary.closed  # its stream was closed, so an LLM server stops generating


async def test_the_llms_own_first_token_deadline_hands_over_too() -> None:
    primary = ScriptedBackend("llm", ("late",), wait=HANG)
    chain = FallbackGenerator([llm(primary, first_token_s=0.05), Always("templates", ("T",))])
    assert await _reply(chain) == ("T", "templates")
    assert primary.closed


async def test_a_failure_after_the_first_token_is_not_hidden() -> None:
    chain = FallbackGenerator(
        [llm(ScriptedBackend("llm", ("Half a ",), fail_after=True)), Always("templates", ("T",))]
    )
    with pytest.raises(GeneratorBroke, match="llm: stream cut after the first token"):
        await _reply(chain)


async def test_closing_the_chains_stream_closes_the_answering_backend() -> None:
    primary = ScriptedBackend("llm", ("a", "b", "c"))
    chain = FallbackGenerator([llm(primary), Always("templates", ("T",))])
    stream = await chain.open(plain_request())
    assert stream.answered_by == "llm"
    assert await anext(stream.pieces) == "a"
    await stream.aclose()
    assert primary.closed


async def test_cancelling_the_chain_while_it_waits_closes_the_backend() -> None:
    primary = ScriptedBackend("llm", ("late",), wait=HANG)
    chain = FallbackGenerator([llm(primary), Always("templates", ("T",))], first_token_timeout=HANG)
    opening = asyncio.create_task(chain.open(plain_request()))
    await eventually(lambda: primary.started, within=HANG)
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    assert primary.closed


def test_a_chain_needs_two_generators() -> None:
    with pytest.raises(ValueError, match="two"):
        FallbackGenerator([Always("only", ())])
