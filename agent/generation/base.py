"""The `Generator` seam: a cancellable stream of reply text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from agent.language import Language
from agent.values import Decision, EmotionReading, Exchange, HistorySummary

__all__ = ["GenerationRequest", "Generator"]


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


class Generator(Protocol):
    @property
    def name(self) -> str: ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        """Yield the reply in pieces as they are produced.

        Safe to cancel at any point: cancelling the consuming task (or closing
        the iterator) stops generation and releases what it holds upstream.
        """
        ...
