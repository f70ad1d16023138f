"""The `Policy` seam: a pure function of the turn's context."""

from __future__ import annotations

from typing import Protocol

from agent.values import Decision, TurnContext

__all__ = ["Policy"]


class Policy(Protocol):
    @property
    def name(self) -> str: ...

    def decide(self, context: TurnContext) -> Decision | None:
        """Decide the turn, or abstain with None. Pure: no I/O; time is `context.now`."""
        ...
