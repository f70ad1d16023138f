"""A generator whose stream passes through the output guard on its way to the user."""

from __future__ import annotations

from agent.generation.base import GenerationRequest, Generator, ReplyPieces, ReplyStream
from agent.generation.guard import OutputGuard

__all__ = ["GuardedGenerator"]


class GuardedGenerator:
    """`inner`'s reply, sentence by sentence through `guard` (personal data and blocklisted
    content caught before they reach the client); its name and answerer are `inner`'s."""

    def __init__(self, inner: Generator, guard: OutputGuard) -> None:
        self._inner = inner
        self._guard = guard

    @property
    def name(self) -> str:
        return self._inner.name

    async def open(self, request: GenerationRequest) -> ReplyStream:
        """`inner`'s reply, guarded; closing it closes `inner`'s stream. Safe to cancel."""
        inner = await self._inner.open(request)
        guarded = self._guard.guard(inner.pieces, request.language)
        return ReplyStream(
            answered_by=inner.answered_by, pieces=ReplyPieces(guarded, upstream=inner.pieces)
        )
