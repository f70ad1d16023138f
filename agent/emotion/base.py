"""The `EmotionRecognizer` seam: batch-first, so micro-batching fits behind it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from agent.values import EmotionReading

__all__ = ["EmotionRecognizer"]


class EmotionRecognizer(Protocol):
    @property
    def name(self) -> str:
        """The model name recorded with every reading."""
        ...

    async def read_batch(self, texts: Sequence[str]) -> list[EmotionReading]:
        """One reading per text, in order. Safe to cancel."""
        ...
