"""The ensemble: priority first, then confidence; abstentions and overruled decisions on record."""

from __future__ import annotations

import pytest

from agent.values import (
    Action,
    Decision,
    EmotionReading,
    HistorySummary,
    Strategy,
    Tone,
    TurnContext,
)
from policies import FallbackPolicy, Member, Policy, PolicyEnsemble


class Fixed:
    """A policy that always says the same thing, or abstains."""

    def __init__(
        self,
        name: str,
        strategy: Strategy | None,
        confidence: float = 0.5,
        *,
        action: Action = Action.REPLY,
    ) -> None:
        self.name = name
        self._strategy = strategy
        self._confidence = confidence
        self._action = action

    def decide(self, context: TurnContext) -> Decision | None:
        if self._strategy is None:
            return None
        return Decision(
            action=self._action,
            strategy=self._strategy,
            tone=Tone.NEUTRAL,
            confidence=self._confidence,
            policy=self.name,
            reasons=(f"{self.name} says so",),
        )


def _context(history: HistorySummary | None = None) -> TurnContext:
    reading = EmotionReading(
        scores={"neutral": 1.0}, dominant="neutral", valence=0.0, arousal=0.0, intensity=0.0,
        model="test",
    )  # fmt: skip
    return TurnContext(
        text="hello", emotion=reading, history=history or HistorySummary.first_time()
    )


def test_priority_beats_confidence() -> None:
    ensemble = PolicyEnsemble(
        [
            Member(Fixed("low", Strategy.CELEBRATE, confidence=0.99), priority=1),
            Member(Fixed("high", Strategy.APOLOGIZE, confidence=0.2), priority=9),
        ]
    )
    decision = ensemble.decide(_context())
    assert decision is not None
    assert (decision.policy, decision.strategy) == ("high", Strategy.APOLOGIZE)
    assert decision.reasons == ("high says so", "overruled low: celebrate (0.99)")


class Relay:
    """A policy that passes another's decision on under its own name, as `Escalations` does."""

    def __init__(self, name: str, policy: Policy) -> None:
        self.name = name
        self._policy = policy

    def decide(self, context: TurnContext) -> Decision | None:
        return self._policy.decide(context)


def test_a_relayed_decision_is_named_once_and_never_overruled_by_itself() -> None:
    rules = Fixed("rules", Strategy.DE_ESCALATE, 0.9, action=Action.HANDOFF)
    ensemble = PolicyEnsemble(
        [
            Member(Relay("escalations", rules), priority=70),
            Member(Fixed("bandit", Strategy.APOLOGIZE, 0.6), priority=60),
            Member(rules, priority=50),
            Member(Fixed("fallback", Strategy.INFORM, 0.3), priority=0),
        ]
    )
    decision = ensemble.decide(_context())
    assert decision is not None
    assert decision.reasons == (
        "rules says so",
        "overruled bandit: apologize (0.60)",
        "overruled fallback: inform (0.30)",
    )


def test_an_overruled_handoff_names_its_action() -> None:
    ensemble = PolicyEnsemble(
        [
            Member(Fixed("safety", Strategy.EMPATHIZE, 1.0), priority=100),
            Member(Fixed("rules", Strategy.DE_ESCALATE, 0.9, action=Action.HANDOFF), priority=50),
        ]
    )
    decision = ensemble.decide(_context())
    assert decision is not None
    assert decision.reasons[-1] == "overruled rules: handoff, de-escalate (0.90)"


def test_equal_priorities_go_by_confidence_then_order() -> None:
    ensemble = PolicyEnsemble(
        [
            Member(Fixed("a", Strategy.INFORM, 0.5), priority=1),
            Member(Fixed("b", Strategy.CLARIFY, 0.7), priority=1),
            Member(Fixed("c", Strategy.REASSURE, 0.7), priority=1),
        ]
    )
    decision = ensemble.decide(_context())
    assert decision is not None
    assert decision.policy == "b"


def test_abstentions_are_recorded_and_all_abstaining_abstains() -> None:
    ensemble = PolicyEnsemble([Member(Fixed("quiet", None), 5), Member(FallbackPolicy(), 0)])
    decision = ensemble.decide(_context())
    assert decision is not None
    assert (decision.policy, decision.abstained) == ("fallback", ("quiet",))
    assert PolicyEnsemble([Member(Fixed("quiet", None), 5)]).decide(_context()) is None


def test_a_returning_users_history_is_cited_whoever_decides() -> None:
    history = HistorySummary(returning=True, sessions=2, turns=5)
    decision = PolicyEnsemble([Member(FallbackPolicy(), 0)]).decide(_context(history))
    assert decision is not None
    assert decision.reasons[-1] == "returning user (2 sessions, 5 turns)"


def test_members_need_unique_names() -> None:
    with pytest.raises(ValueError, match="unique"):
        PolicyEnsemble([Member(FallbackPolicy(), 0), Member(FallbackPolicy(), 1)])
    with pytest.raises(ValueError, match="at least one"):
        PolicyEnsemble([])
