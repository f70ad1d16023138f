"""The bandit as a learner: rewards from outcomes, and workers merging what they learned."""

from __future__ import annotations

import numpy as np

from agent.values import (
    EmotionReading,
    HistorySummary,
    Strategy,
    TurnContext,
)
from policies.bandit import LinearBandit
from policies.features import FEATURE_DIM
from policies.learning import BanditLearner


def _context() -> TurnContext:
    reading = EmotionReading(
        scores={"anger": 0.8, "neutral": 0.2}, dominant="anger", valence=-0.6, arousal=0.7,
        intensity=0.8, model="test",
    )  # fmt: skip
    return TurnContext(text="x", emotion=reading, history=HistorySummary.first_time())


def test_outcomes_become_updates_and_a_middling_score_teaches_nothing() -> None:
    learner = BanditLearner(LinearBandit())
    x = learner.features(_context())
    assert len(x) == FEATURE_DIM
    learner.learn(x, Strategy.APOLOGIZE, feedback=None, valence_before=-0.6, valence_after=0.2)
    learner.learn(x, Strategy.APOLOGIZE, feedback=5, valence_before=-0.6, valence_after=None)
    learner.learn(x, Strategy.INFORM, feedback=3, valence_before=-0.6, valence_after=None)
    assert learner.bandit.counts[Strategy.APOLOGIZE] == 2
    assert learner.bandit.counts[Strategy.INFORM] == 0
    assert learner.bandit.predict(np.asarray(x))[Strategy.APOLOGIZE] > 0


def test_two_workers_merge_without_losing_an_update() -> None:
    one, two = BanditLearner(LinearBandit()), BanditLearner(LinearBandit())
    x = one.features(_context())
    for _ in range(3):
        one.learn(x, Strategy.APOLOGIZE, feedback=5, valence_before=0.0, valence_after=None)
    for _ in range(2):
        two.learn(x, Strategy.INFORM, feedback=1, valence_before=0.0, valence_after=None)
    shared = one.merge_shared(None)
    shared = two.merge_shared(shared)
    shared = one.merge_shared(shared)  # nothing new from one: it just catches up
    assert one.bandit.updates == two.bandit.updates == 5
    assert LinearBandit.from_state(shared).counts == one.bandit.counts
    assert one.bandit.counts[Strategy.APOLOGIZE] == 3
    assert one.bandit.counts[Strategy.INFORM] == 2
