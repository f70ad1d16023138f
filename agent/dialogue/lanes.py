"""A session's lane in a worker: its turns waiting, in order, and the one running."""

from __future__ import annotations

import asyncio
import bisect
from dataclasses import dataclass, field

from agent.dialogue.pipeline import TurnOutcome
from agent.events import UserTurn

__all__ = ["Lane"]


@dataclass(slots=True)
class Lane:
    """The turns of one session waiting in this worker, and the one running."""

    pending: list[tuple[UserTurn, float]] = field(default_factory=list)  # by seq
    current: str | None = None
    interrupt: asyncio.Event | None = None
    run: asyncio.Task[TurnOutcome] | None = None  # the current turn's pipeline
    lost: bool = False  # another worker took the current turn over
    closed: bool = False  # the session closed: forget it once these turns are done

    def queue(self, turn: UserTurn, received: float) -> None:
        """Wait in seq order; `received` is when the worker got it (`time.perf_counter()`)."""
        bisect.insort(self.pending, (turn, received), key=lambda item: item[0].seq)

    def let_go(self) -> None:
        """Another worker has the current turn: stop it, publishing nothing more."""
        self.lost = True
        if self.run is not None:
            self.run.cancel()
