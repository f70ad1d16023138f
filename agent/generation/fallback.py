"""The fallback chain: the configured LLM first, the next generator when it cannot answer.

A generator that fails before its first token (`GeneratorUnavailable`: an
error status, a refused connection, an open circuit, a reply without text) or
does not open its reply within `first_token_timeout` is abandoned (its `open`
cancelled, so the server stops) and the next one answers the turn. The last
generator of the chain (templates, which cannot fail) answers whatever happens. A
failure after the first token is not hidden: the user already has part of a reply,
and a second reply stitched to it would read as nonsense (`GeneratorBroke`
propagates).

The stream returned is the answering generator's own, so its `answered_by` names
the generator that answered, for the `reply_end` event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from agent.errors import GeneratorUnavailable
from agent.generation.base import GenerationRequest, Generator, ReplyStream

__all__ = ["FallbackGenerator"]

_log = structlog.get_logger(__name__)


class FallbackGenerator:
    """Generators in order of preference; the last one must always answer."""

    def __init__(self, chain: Sequence[Generator], *, first_token_timeout: float = 5.0) -> None:
        if len(chain) < 2:
            raise ValueError("a fallback chain needs at least two generators")
        if first_token_timeout <= 0:
            raise ValueError("first_token_timeout must be positive")
        self._chain = tuple(chain)
        self._first_token_timeout = first_token_timeout

    @property
    def name(self) -> str:
        return "+".join(generator.name for generator in self._chain)

    async def open(self, request: GenerationRequest) -> ReplyStream:
        """The first reply of the chain that opens in time; safe to cancel."""
        for generator in self._chain[:-1]:
            try:
                async with asyncio.timeout(self._first_token_timeout):
                    return await generator.open(request)
            except (GeneratorUnavailable, TimeoutError) as exc:
                _log.warning(
                    "generator unavailable; falling back",
                    generator=generator.name,
                    session_id=request.session_id,
                    turn_id=request.turn_id,
                    error=str(exc) or type(exc).__name__,
                )
        return await self._chain[-1].open(request)
