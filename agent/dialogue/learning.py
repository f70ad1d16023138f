"""The seam between the turn pipeline and a policy that learns from how turns went.

The pipeline tells a `Learner` two things: how the user's valence moved from
one turn to the next (after the agent's strategy), and what the user said
when they gave explicit feedback on a turn. A learner keeps its features of
each decided turn, so the outcome can be credited to the context it was made
in, whichever policy decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agent.values import Strategy, TurnContext

__all__ = ["Decided", "Learner"]


class Learner(Protocol):
    def features(self, context: TurnContext) -> tuple[float, ...]:
        """The learner's view of a turn's context, kept to credit the outcome later."""
        ...

    def learn(
        self,
        features: tuple[float, ...],
        strategy: Strategy,
        *,
        feedback: int | None,
        valence_before: float,
        valence_after: float | None,
    ) -> None:
        """One outcome of the turn decided on `features` with `strategy`. Never blocks.

        `feedback` is the user's 1-5 score when the outcome is explicit feedback;
        `valence_after` the next turn's valence when it is the valence change.
        """
        ...


@dataclass(frozen=True, slots=True)
class Decided:
    """What a session remembers of a decided turn until its outcomes are in."""

    features: tuple[float, ...]
    strategy: Strategy
    valence: float
