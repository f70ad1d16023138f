"""A generator whose stream passes through the output guard on its way to the user."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from agent.generation.base import GenerationRequest, Generator, NamesAnswerer
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

    def answered_by(self, turn_id: str) -> str | None:
        inner = self._inner
        return inner.answered_by(turn_id) if isinstance(inner, NamesAnswerer) else None

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[str, None]:
        guarded = self._guard.guard(self._inner.stream(request), request.language)
        async for piece in guarded:
            yield piece
