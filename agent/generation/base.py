"""The `Generator` seam: a cancellable stream of reply text."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from agent.language import Language
from agent.values import Decision, EmotionReading, Exchange, HistorySummary

__all__ = [
    "GenerationRequest",
    "Generator",
    "MessageBuilder",
    "NamesAnswerer",
    "answering_name",
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


class Generator(Protocol):
    @property
    def name(self) -> str: ...

    def stream(self, request: GenerationRequest) -> AsyncGenerator[str, None]:
        """Yield the reply in pieces as they are produced.

        Safe to cancel at any point: cancelling the consuming task (or closing
        the iterator) stops generation and releases what it holds upstream.
        """
        ...


@runtime_checkable
class NamesAnswerer(Protocol):
    """A generator made of others (a fallback chain) says which of them answered a turn."""

    def answered_by(self, turn_id: str) -> str | None: ...


def answering_name(generator: Generator, turn_id: str) -> str:
    """The name of the generator that answered `turn_id`, for `reply_end` and the store."""
    if isinstance(generator, NamesAnswerer):
        return generator.answered_by(turn_id) or generator.name
    return generator.name
