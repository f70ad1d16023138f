"""Arbitration: several policies asked, one decision kept, the rest on record.

As in Rasa's policy ensemble, each member has a priority: the decision of the
highest-priority member that did not abstain wins, ties broken by confidence
(then by order). The winning decision records which members abstained, and
its reasons add what the user's history says (for a returning user) and
which decisions it overruled, so a reader of the `decision` message sees the
whole arbitration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from agent.values import Action, Decision, Strategy, Tone, TurnContext
from policies.base import Policy

__all__ = ["FallbackPolicy", "Member", "PolicyEnsemble"]


@dataclass(frozen=True, slots=True)
class Member:
    policy: Policy
    priority: int


class PolicyEnsemble:
    """A `Policy` made of members; abstains only when every member does."""

    name = "ensemble"

    def __init__(self, members: Sequence[Member]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        names = [m.policy.name for m in members]
        if len(set(names)) != len(names):
            raise ValueError(f"member names must be unique, got {names}")
        self._members = tuple(members)

    @property
    def members(self) -> tuple[Member, ...]:
        return self._members

    def decide(self, context: TurnContext) -> Decision | None:
        decided: list[tuple[Member, Decision]] = []
        abstained: list[str] = []
        for member in self._members:
            decision = member.policy.decide(context)
            if decision is None:
                abstained.append(member.policy.name)
            else:
                decided.append((member, decision))
        if not decided:
            return None
        best = max(
            range(len(decided)),
            key=lambda i: (decided[i][0].priority, decided[i][1].confidence, -i),
        )
        winner = decided[best][1]
        # A member may relay another's decision (`Escalations` relays the rules'): the
        # same decision is named once, and never as overruled by itself.
        overruled = tuple(
            dict.fromkeys(
                _overruled(d)
                for _, d in decided
                if (d.policy, d.action, d.strategy)
                != (winner.policy, winner.action, winner.strategy)
            )
        )
        history = (context.history.describe(),) if context.history.returning else ()
        return dataclasses.replace(
            winner, reasons=winner.reasons + history + overruled, abstained=tuple(abstained)
        )


def _overruled(decision: Decision) -> str:
    action = "" if decision.action is Action.REPLY else f"{decision.action.value}, "
    return (
        f"overruled {decision.policy}: {action}{decision.strategy.value}"
        f" ({decision.confidence:.2f})"
    )


class FallbackPolicy:
    """The last resort: inform, neutrally, when no other member has anything to say."""

    name = "fallback"

    def decide(self, context: TurnContext) -> Decision:
        return Decision(
            action=Action.REPLY,
            strategy=Strategy.INFORM,
            tone=Tone.NEUTRAL,
            confidence=0.3,
            policy=self.name,
            reasons=(f"no strong emotion (dominant {context.emotion.dominant})",),
        )
