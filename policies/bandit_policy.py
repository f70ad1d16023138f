"""The bandit as a `Policy`: a strategy drawn by the learned `LinearBandit`, with its propensity."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from agent.errors import ConfigError
from agent.values import Action, Decision, Strategy, Tone, TurnContext
from policies.bandit import Choice, LinearBandit
from policies.features import FEATURE_NAMES, context_features

__all__ = ["DEFAULT_TONES", "BanditPolicy"]

DEFAULT_TONES: Mapping[Strategy, Tone] = {
    Strategy.EMPATHIZE: Tone.WARM,
    Strategy.APOLOGIZE: Tone.WARM,
    Strategy.REASSURE: Tone.CALM,
    Strategy.INFORM: Tone.NEUTRAL,
    Strategy.CLARIFY: Tone.NEUTRAL,
    Strategy.ENCOURAGE: Tone.WARM,
    Strategy.CELEBRATE: Tone.UPBEAT,
    Strategy.DE_ESCALATE: Tone.CALM,
}


class BanditPolicy:
    """The `Policy` face of a `LinearBandit`: strategy by the bandit, with its propensity.

    Randomness: the policy draws from the `rng` it was given, so it is pure
    given that generator's state and a seed reproduces every decision; give
    each worker its own generator (e.g. ``np.random.default_rng([seed, worker])``).

    It abstains while the bandit has had fewer than `min_updates` updates in
    all, so a cold bandit (which would pick uniformly at random) never speaks
    for the agent; put it below the rules in an ensemble, and keep updating it
    from every rewarded turn (whoever decided it) or warm it from logged
    decisions (`learn_offline` in `agent/training/policy/offpolicy.py`).

    A decision's `confidence` is its propensity: the probability the policy
    gave this strategy, not a probability that it will work.
    """

    name = "bandit"

    def __init__(
        self,
        bandit: LinearBandit,
        *,
        rng: np.random.Generator,
        min_updates: int = 100,
        tones: Mapping[Strategy, Tone] = DEFAULT_TONES,
    ) -> None:
        if bandit.features != FEATURE_NAMES:
            raise ConfigError(
                "bandit policy: the bandit was built for other features than "
                "policies.features.FEATURE_NAMES; train a new one or load a matching state"
            )
        missing = [arm.value for arm in bandit.arms if arm not in tones]
        if missing:
            raise ConfigError(f"bandit policy: `tones` has no tone for {', '.join(missing)}")
        if min_updates < 0:
            raise ConfigError("bandit policy: `min_updates` must be ≥ 0")
        self._bandit = bandit
        self._rng = rng
        self._min_updates = min_updates
        self._tones = dict(tones)

    @property
    def bandit(self) -> LinearBandit:
        return self._bandit

    def decide(self, context: TurnContext, *, flow_state: str | None = None) -> Decision | None:
        """Draw a strategy for this turn, or abstain while the bandit is cold.

        `flow_state` overrides the context's flow state (`TurnContext.flow_state`).
        """
        if self._bandit.updates < self._min_updates:
            return None
        flow = context.flow_state if flow_state is None else flow_state
        choice = self._bandit.choose(context_features(context, flow_state=flow), self._rng)
        return Decision(
            action=Action.REPLY,
            strategy=choice.arm,
            tone=self._tones[choice.arm],
            confidence=choice.propensity,
            policy=self.name,
            reasons=(_reason(choice),),
            propensity=choice.propensity,
        )


def _reason(choice: Choice) -> str:
    ranked = sorted(choice.scores.items(), key=lambda item: -item[1])
    best, best_score = ranked[0]
    mine = choice.scores[choice.arm]
    if not choice.greedy:
        return (
            f"exploring: {choice.arm.value} (p {choice.propensity:.3f}) "
            f"instead of {best.value} scored {best_score:.2f}"
        )
    others = [(arm, score) for arm, score in ranked if arm is not choice.arm]
    if not others:
        return f"learned: {choice.arm.value} is the only strategy"
    runner, runner_score = others[0]
    return f"learned: {choice.arm.value} scored {mine:.2f} over {runner.value} {runner_score:.2f}"
