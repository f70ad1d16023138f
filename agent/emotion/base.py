"""The `EmotionRecognizer` seam: batch-first, so micro-batching fits behind it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from agent.values import EmotionReading

__all__ = ["EmotionModel", "EmotionRecognizer", "noted"]

_MODEL_NAME_CHARS = 128  # EmotionReading.model's limit


class EmotionRecognizer(Protocol):
    @property
    def name(self) -> str:
        """The model name recorded with every reading."""
        ...

    async def read_batch(self, texts: Sequence[str]) -> list[EmotionReading]:
        """One reading per text, in order. Safe to cancel."""
        ...


class EmotionModel(Protocol):
    """A model that reads a batch at once, blocking: run it off the event loop.

    `MicroBatcher` turns one into an `EmotionRecognizer` by grouping concurrent
    turns into one call on a worker thread.
    """

    @property
    def name(self) -> str: ...

    def predict(self, texts: Sequence[str]) -> list[EmotionReading]:
        """One reading per text, in order. CPU-bound; never call it on the event loop."""
        ...


def noted(model: str, suffix: str) -> str:
    """`model` with `suffix` noted once (what a layer did to its readings), cut to fit a
    reading's model name."""
    if model.endswith(suffix):
        return model
    return model[: _MODEL_NAME_CHARS - len(suffix)] + suffix
