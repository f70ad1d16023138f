"""The fallback chain: the configured LLM first, the next generator when it cannot answer.

A generator that fails before its first token (`GeneratorUnavailable`: an
error status, a refused connection, an open circuit), ends without one, or
does not produce one within `first_token_timeout` is abandoned (its stream
closed, so the server stops) and the next one answers the turn. The last generator of
the chain (templates, which cannot fail) answers whatever happens. A failure
after the first token is not hidden: the user already has part of a reply,
and a second reply stitched to it would read as nonsense (`GeneratorBroke`
propagates).

`answered_by(turn_id)` names the generator that answered a recent turn, for
the `reply_end` event.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing

import structlog

from agent.errors import GeneratorUnavailable
from agent.generation.base import GenerationRequest, Generator, answering_name

__all__ = ["FallbackGenerator"]

_log = structlog.get_logger(__name__)

_REMEMBERED = 1024  # turns whose answering generator is kept for `answered_by`


class FallbackGenerator:
    """Generators in order of preference; the last one must always answer."""

    def __init__(self, chain: Sequence[Generator], *, first_token_timeout: float = 5.0) -> None:
        if len(chain) < 2:
            raise ValueError("a fallback chain needs at least two generators")
        if first_token_timeout <= 0:
            raise ValueError("first_token_timeout must be positive")
        self._chain = tuple(chain)
        self._first_token_timeout = first_token_timeout
        self._answered: OrderedDict[str, Generator] = OrderedDict()

    @property
    def name(self) -> str:
        return "+".join(generator.name for generator in self._chain)

    def answered_by(self, turn_id: str) -> str | None:
        generator = self._answered.get(turn_id)
        return None if generator is None else answering_name(generator, turn_id)

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[str, None]:
        for generator in self._chain[:-1]:
            pieces = generator.stream(request)
            async with aclosing(pieces):
                try:
                    async with asyncio.timeout(self._first_token_timeout):
                        first = await anext(pieces)
                except (GeneratorUnavailable, TimeoutError, StopAsyncIteration) as exc:
                    _log.warning(
                        "generator unavailable; falling back",
                        generator=generator.name,
                        session_id=request.session_id,
                        turn_id=request.turn_id,
                        error=str(exc) or type(exc).__name__,
                    )
                    continue
                self._remember(request.turn_id, generator)
                yield first
                async for piece in pieces:
                    yield piece
                return
        last = self._chain[-1]
        self._remember(request.turn_id, last)
        async for piece in last.stream(request):
            yield piece

    def _remember(self, turn_id: str, generator: Generator) -> None:
        self._answered[turn_id] = generator
        while len(self._answered) > _REMEMBERED:
            self._answered.popitem(last=False)
