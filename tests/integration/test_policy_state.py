"""Learned policy state shared through the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.values import EmotionReading, HistorySummary, Strategy, TurnContext
from memory.sql.policy_state import PolicyStateSync, exchange_policy_state, load_policy_state
from policies.bandit import LinearBandit
from policies.learning import BanditLearner

pytestmark = pytest.mark.integration


async def test_concurrent_exchanges_lose_no_update(sql_engine: AsyncEngine) -> None:
    def increment(stored: Mapping[str, Any] | None) -> dict[str, Any]:
        return {"n": (stored or {"n": 0})["n"] + 1}

    await asyncio.gather(
        *(
            exchange_policy_state(sql_engine, tenant="t", policy="counter", merge=increment)
            for _ in range(12)
        )
    )
    assert await load_policy_state(sql_engine, tenant="t", policy="counter") == {"n": 12}
    assert await load_policy_state(sql_engine, tenant="other", policy="counter") is None


def _features(learner: BanditLearner) -> tuple[float, ...]:
    reading = EmotionReading(
        scores={"neutral": 1.0}, dominant="neutral", valence=0.0, arousal=0.1, intensity=0.1,
        model="test",
    )  # fmt: skip
    return learner.features(
        TurnContext(text="x", emotion=reading, history=HistorySummary.first_time())
    )


async def test_workers_share_what_their_bandits_learned(sql_engine: AsyncEngine) -> None:
    one, two = BanditLearner(LinearBandit()), BanditLearner(LinearBandit())
    x = _features(one)
    syncs = [
        PolicyStateSync(sql_engine, tenant="t", policy="bandit", merge=learner.merge_shared)
        for learner in (one, two)
    ]
    async with syncs[0], syncs[1]:
        for _ in range(4):
            one.learn(x, Strategy.CLARIFY, feedback=5, valence_before=0.0, valence_after=None)
        two.learn(x, Strategy.INFORM, feedback=1, valence_before=0.0, valence_after=None)
    # Leaving synced each worker once more; a worker starting now begins with all of it.
    late = BanditLearner(LinearBandit())
    async with PolicyStateSync(sql_engine, tenant="t", policy="bandit", merge=late.merge_shared):
        assert late.bandit.counts[Strategy.CLARIFY] == 4
        assert late.bandit.counts[Strategy.INFORM] == 1
    stored = await load_policy_state(sql_engine, tenant="t", policy="bandit")
    assert stored is not None
    assert LinearBandit.from_state(stored).updates == 5
