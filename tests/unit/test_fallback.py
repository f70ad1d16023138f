"""The fallback chain: the next generator answers when one cannot, within the first-token bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

import pytest

from agent.errors import GeneratorBroke, GeneratorUnavailable
from agent.generation.base import GenerationRequest, answering_name
from agent.generation.fallback import FallbackGenerator
from tests.support.generation import plain_request


class Scripted:
    """A generator double: waits, fails or yields as told, and records being closed."""

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
        self.closed = False

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[str, None]:
        try:
            await asyncio.sleep(self._wait)
            if self._fail_before:
                raise GeneratorUnavailable("server said 503")
            for piece in self._pieces:
                yield piece
            if self._fail_after:
                raise GeneratorBroke("stream cut")
        finally:
            self.closed = True


async def _reply(chain: FallbackGenerator, turn_id: str = "t1") -> str:
    return "".join([piece async for piece in chain.stream(plain_request(turn_id=turn_id))])


async def test_the_first_generator_answers_when_it_can() -> None:
    chain = FallbackGenerator([Scripted("llm", ("Hel", "lo")), Scripted("templates", ("T",))])
    assert await _reply(chain) == "Hello"
    assert answering_name(chain, "t1") == "llm"
    assert chain.name == "llm+templates"


@pytest.mark.parametrize(
    "primary",
    [
        Scripted("llm", fail_before=True),
        Scripted("llm", ()),  # ended without a token
        Scripted("llm", ("late",), wait=10.0),  # no first token in time
    ],
)
async def test_the_next_answers_within_the_first_token_bound(primary: Scripted) -> None:
    chain = FallbackGenerator([primary, Scripted("templates", ("Sorry, ", "one moment."))],
                              first_token_timeout=0.2)  # fmt: skip
    started = time.perf_counter()
    assert await _reply(chain, "t2") == "Sorry, one moment."
    assert time.perf_counter() - started < 1.0
    assert answering_name(chain, "t2") == "templates"
    assert primary.closed  # its stream was closed, so an LLM server stops generating


async def test_a_failure_after_the_first_token_is_not_hidden() -> None:
    chain = FallbackGenerator(
        [Scripted("llm", ("Half a ",), fail_after=True), Scripted("templates", ("T",))]
    )
    with pytest.raises(GeneratorBroke):
        await _reply(chain)


async def test_closing_the_chain_closes_the_answering_stream() -> None:
    primary = Scripted("llm", ("a", "b", "c"))
    chain = FallbackGenerator([primary, Scripted("templates", ("T",))])
    pieces = chain.stream(plain_request())
    assert await anext(pieces) == "a"
    await pieces.aclose()
    assert primary.closed


def test_a_chain_needs_two_generators() -> None:
    with pytest.raises(ValueError, match="two"):
        FallbackGenerator([Scripted("only")])
