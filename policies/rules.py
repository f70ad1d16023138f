"""The rule policy: ordered, declarative rules over the emotion reading and history.

Rules are data (`Rule` values); the first rule whose condition holds decides.
Each decision carries human-readable reasons that name the numbers behind it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.values import Action, Decision, Strategy, Tone, Trend, TurnContext

__all__ = ["DEFAULT_RULES", "Rule", "RulePolicy", "group_score"]

ANGER = ("anger", "annoyance", "disapproval", "disgust")
SADNESS = ("sadness", "grief", "disappointment", "remorse", "embarrassment")
FEAR = ("fear", "nervousness")
JOY = (
    "joy", "excitement", "gratitude", "love", "pride", "admiration", "amusement",
    "optimism", "relief", "approval",
)  # fmt: skip
CONFUSION = ("confusion",)

_HUMAN_REQUEST = re.compile(
    r"\b(human|real person|live agent|an agent|operator|supervisor|manager)\b|人工|真人|转客服",
    re.IGNORECASE,
)


def group_score(context: TurnContext, labels: Sequence[str]) -> float:
    return sum(context.emotion.score(label) for label in labels)


def _angry_streak(context: TurnContext, threshold: float, turns: int) -> bool:
    """The current and the previous `turns - 1` readings all reach `threshold` anger."""
    earlier = [e.emotion for e in context.conversation[-(turns - 1) :] if e.emotion]
    if len(earlier) < turns - 1 or group_score(context, ANGER) < threshold:
        return False
    return all(sum(r.score(label) for label in ANGER) >= threshold for r in earlier)


def _streak_of(context: TurnContext, mood: str) -> int:
    """How many of the user's latest earlier sessions in a row had this mood."""
    latest, streak = context.history.mood_streak()
    return streak if latest == mood else 0


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    when: Callable[[TurnContext], bool]
    action: Action
    strategy: Strategy
    tone: Tone
    confidence: float
    reason: Callable[[TurnContext], str]


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        name="asks_for_human",
        when=lambda c: _HUMAN_REQUEST.search(c.text) is not None,
        action=Action.HANDOFF,
        strategy=Strategy.DE_ESCALATE,
        tone=Tone.CALM,
        confidence=0.95,
        reason=lambda c: "the user asked for a human",
    ),
    Rule(
        name="angry_three_turns",
        when=lambda c: _angry_streak(c, 0.5, 3),
        action=Action.HANDOFF,
        strategy=Strategy.DE_ESCALATE,
        tone=Tone.CALM,
        confidence=0.9,
        reason=lambda c: "anger ≥ 0.5 on three consecutive turns",
    ),
    Rule(
        name="angry",
        when=lambda c: group_score(c, ANGER) >= 0.5,
        action=Action.REPLY,
        strategy=Strategy.DE_ESCALATE,
        tone=Tone.CALM,
        confidence=0.8,
        reason=lambda c: f"anger {group_score(c, ANGER):.2f} ≥ 0.50",
    ),
    Rule(
        name="sad",
        when=lambda c: group_score(c, SADNESS) >= max(0.4, group_score(c, JOY)),
        action=Action.REPLY,
        strategy=Strategy.EMPATHIZE,
        tone=Tone.WARM,
        confidence=0.75,
        reason=lambda c: f"sadness {group_score(c, SADNESS):.2f} ≥ 0.40",
    ),
    Rule(
        name="afraid",
        when=lambda c: group_score(c, FEAR) >= max(0.4, group_score(c, JOY)),
        action=Action.REPLY,
        strategy=Strategy.REASSURE,
        tone=Tone.CALM,
        confidence=0.75,
        reason=lambda c: f"fear {group_score(c, FEAR):.2f} ≥ 0.40",
    ),
    Rule(
        name="frustrated_before",
        when=lambda c: _streak_of(c, "anger") >= 2,
        action=Action.REPLY,
        strategy=Strategy.APOLOGIZE,
        tone=Tone.WARM,
        confidence=0.65,
        reason=lambda c: (
            f"apologise first: frustrated in the last {_streak_of(c, 'anger')} sessions"
        ),
    ),
    Rule(
        name="returning_and_deteriorating",
        when=lambda c: c.history.returning and c.history.trend is Trend.DETERIORATING,
        action=Action.REPLY,
        strategy=Strategy.EMPATHIZE,
        tone=Tone.WARM,
        confidence=0.6,
        reason=lambda c: f"returning user, mood deteriorating over {c.history.turns} turns",
    ),
    Rule(
        name="happy",
        when=lambda c: group_score(c, JOY) >= 0.4,
        action=Action.REPLY,
        strategy=Strategy.CELEBRATE,
        tone=Tone.UPBEAT,
        confidence=0.7,
        reason=lambda c: f"joy {group_score(c, JOY):.2f} ≥ 0.40",
    ),
    Rule(
        name="confused",
        when=lambda c: group_score(c, CONFUSION) >= 0.3,
        action=Action.REPLY,
        strategy=Strategy.CLARIFY,
        tone=Tone.NEUTRAL,
        confidence=0.6,
        reason=lambda c: f"confusion {group_score(c, CONFUSION):.2f} ≥ 0.30",
    ),
    Rule(
        name="default",
        when=lambda c: True,
        action=Action.REPLY,
        strategy=Strategy.INFORM,
        tone=Tone.NEUTRAL,
        confidence=0.3,
        reason=lambda c: f"no strong emotion (dominant {c.emotion.dominant})",
    ),
)


class RulePolicy:
    """First matching rule wins; with the default rules it never abstains."""

    name = "rules"

    def __init__(self, rules: Sequence[Rule] = DEFAULT_RULES) -> None:
        self._rules = tuple(rules)

    def decide(self, context: TurnContext) -> Decision | None:
        for rule in self._rules:
            if rule.when(context):
                reasons = [rule.reason(context)]
                if context.history.returning:
                    reasons.append(context.history.describe())
                return Decision(
                    action=rule.action,
                    strategy=rule.strategy,
                    tone=rule.tone,
                    confidence=rule.confidence,
                    policy=f"{self.name}:{rule.name}",
                    reasons=tuple(reasons),
                )
        return None
