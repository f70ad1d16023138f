"""The `Generator` seam: a reply opened as a cancellable stream of text, with who answers it.

`Generator.open` starts a reply and returns a `ReplyStream`: the text pieces as they
come, and `answered_by`, the name of the generator that produces them (in a fallback
chain, the one that could answer). The caller closes the stream, whatever way it ends
(`contextlib.aclosing`).

`ReplyPieces` is the stream of a generator that wraps another's or read ahead of its
caller: an async generator that has not started runs nothing when closed, so it could
not release what it wraps; a `ReplyPieces` always does.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from agent.language import Language
from agent.values import Decision, EmotionReading, Exchange, HistorySummary

__all__ = [
    "GenerationRequest",
    "Generator",
    "MessageBuilder",
    "ReplyPieces",
    "ReplyStream",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationRequest:
    """Everything a generator conditions the reply on."""

    session_id: str
    turn_id: str
    text: str
    language: Language
    emotion: EmotionReading
    decision: Decision
    history: HistorySummary
    conversation: tuple[Exchange, ...] = ()


MessageBuilder = Callable[[GenerationRequest], list[dict[str, str]]]
"""Turns a request into the chat messages given to a model (`role`, `content`)."""


@dataclass(frozen=True, slots=True)
class ReplyStream:
    """A reply's text pieces as they come, and the generator that produces them."""

    answered_by: str
    pieces: AsyncGenerator[str, None]

    def __aiter__(self) -> AsyncGenerator[str, None]:
        return self.pieces

    async def aclose(self) -> None:
        """Stop the reply and release what it holds upstream (a connection, a request)."""
        await self.pieces.aclose()


class Generator(Protocol):
    @property
    def name(self) -> str: ...

    async def open(self, request: GenerationRequest) -> ReplyStream:
        """Start a reply.

        Raises `GeneratorUnavailable` when this generator cannot answer it (nothing
        has reached the user); iterating the stream may raise `GeneratorBroke`. Safe
        to cancel: a cancelled `open` leaves nothing running. The caller closes the
        stream (`aclose`, or `contextlib.aclosing`), which stops generation and
        releases what it holds upstream.
        """
        ...


class ReplyPieces(AsyncGenerator[str, None]):
    """`pieces`, after `first` when one was read ahead, closing `upstream` too when closed.

    Closing it closes `pieces` and then `upstream`, whether or not iteration began.
    """

    __slots__ = ("_first", "_pieces", "_upstream")

    def __init__(
        self,
        pieces: AsyncGenerator[str, None],
        *,
        first: str | None = None,
        upstream: AsyncGenerator[str, None] | None = None,
    ) -> None:
        self._pieces = pieces
        self._first = first
        self._upstream = upstream

    async def __anext__(self) -> str:
        first, self._first = self._first, None
        if first is not None:
            return first
        return await anext(self._pieces)

    async def asend(self, value: None, /) -> str:
        return await self.__anext__()

    async def athrow(self, typ: Any, val: Any = None, tb: TracebackType | None = None, /) -> str:
        self._first = None
        if val is None and tb is None:
            return await self._pieces.athrow(typ)
        return await self._pieces.athrow(typ, val, tb)

    async def aclose(self) -> None:
        self._first = None
        try:
            await self._pieces.aclose()
        finally:
            if self._upstream is not None:
                await self._upstream.aclose()
