"""The bandit as a `Learner`: outcomes of turns become reward updates, shared across workers.

Every rewarded turn updates the bandit, whichever policy decided it: each
strategy's regression is conditional on the context, so turns the rules
served teach it too. Rewards combine explicit feedback (a 1-5 score: 4-5
count +1, 1-2 count -1, 3 nothing) and the change in valence by
`policies.reward.reward`, with configurable weights.

Workers share one state (`merge_shared`): a worker keeps a copy of the
state it last synchronised with, and adds only what it learned since (the
statistics are sums), so merging in any order loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from agent.values import Strategy, TurnContext
from policies.bandit import LinearBandit
from policies.features import context_features
from policies.reward import reward

__all__ = ["BanditLearner", "feedback_polarity"]


class BanditLearner:
    """Implements `agent.dialogue.learning.Learner` for a `LinearBandit`, in place."""

    def __init__(
        self, bandit: LinearBandit, *, feedback_weight: float = 1.0, valence_weight: float = 1.0
    ) -> None:
        self._bandit = bandit
        self._base = bandit.copy()
        self._feedback_weight = feedback_weight
        self._valence_weight = valence_weight

    @property
    def bandit(self) -> LinearBandit:
        return self._bandit

    def features(self, context: TurnContext) -> tuple[float, ...]:
        return tuple(float(v) for v in context_features(context, flow_state=context.flow_state))

    def learn(
        self,
        features: tuple[float, ...],
        strategy: Strategy,
        *,
        feedback: int | None,
        valence_before: float,
        valence_after: float | None,
    ) -> None:
        value = reward(
            feedback_polarity(feedback),
            valence_before,
            valence_after,
            feedback_weight=self._feedback_weight,
            valence_weight=self._valence_weight,
        )
        if value is not None and strategy in self._bandit.arms:
            self._bandit.update(np.asarray(features, dtype=np.float64), strategy, value)

    def merge_shared(self, shared: Mapping[str, Any] | None) -> dict[str, Any]:
        """The shared state with this worker's updates since the last merge; adopts it.

        The bandit is changed in place, so a policy holding it sees the merge.
        Raises ValueError for a shared state that is not a bandit's.
        """
        merged = self._base.copy() if shared is None else LinearBandit.from_state(shared)
        merged.absorb(self._bandit, base=self._base)
        self._bandit.absorb(merged, base=self._bandit.copy())
        self._base = merged.copy()
        return merged.to_state()


def feedback_polarity(score: int | None) -> int | None:
    """A 1-5 feedback score as the bandit's -1 / +1: 4 and 5 please, 1 and 2 do not, 3 says
    nothing."""
    if score is None or score == 3:
        return None
    return 1 if score > 3 else -1
