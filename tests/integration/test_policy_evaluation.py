"""`heartline policy evaluate` on logged decisions in a real database."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.config import load_settings
from agent.errors import ConfigError
from agent.training.policy.evaluate import evaluate_policy
from agent.values import Strategy
from memory.records import FeedbackRecord
from memory.sql import SqlConversationStore
from memory.sql.policy_state import exchange_policy_state
from policies.bandit import LinearBandit
from policies.features import FEATURE_DIM
from tests.support.records import turn

pytestmark = pytest.mark.integration


async def test_the_stored_bandit_is_evaluated_on_what_it_served(
    sql_engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    arms = (Strategy.APOLOGIZE, Strategy.INFORM)
    async with SqlConversationStore(sql_engine) as store:
        for session in range(30):
            for seq in (1, 2, 3):
                arm = arms[int(rng.integers(2))]
                valence = float(rng.uniform(-0.5, 0.5))
                record = turn(f"s{session}", seq, valence=valence, tenant="acme")
                learned = dataclasses.replace(record.decision, strategy=arm, propensity=0.5)
                features = tuple(float(v) for v in rng.uniform(-1, 1, FEATURE_DIM))
                await store.record_turn(
                    dataclasses.replace(record, decision=learned, features=features)
                )
            await store.record_feedback(
                FeedbackRecord(
                    session_id=f"s{session}", user_id="alice", turn_id=f"s{session}-3",
                    score=5, created_at=2_000.0, tenant="acme",
                )
            )  # fmt: skip
        await store.record_turn(turn("rules-only", 1, tenant="acme"))  # no propensity: unusable
        await store.flush()
    settings = load_settings(database_url=db_url, data_dir=tmp_path, tenant="acme")
    with pytest.raises(ConfigError, match="no learned bandit stored"):
        await evaluate_policy(settings, max_weight=None)

    await exchange_policy_state(
        sql_engine, tenant="acme", policy="bandit", merge=lambda _: LinearBandit().to_state()
    )
    evaluation = await evaluate_policy(settings, max_weight=None)

    (_, logged), (_, by_ips), (_, by_snips), (_, by_dr) = evaluation.rows
    # 30 sessions x 3 turns, each with a next turn's valence or feedback as its outcome.
    assert logged.n == by_ips.n == by_dr.n == 90
    assert evaluation.skipped == 0
    # A cold bandit plays uniformly over 8 strategies: weight (1/8) / (1/2) on every log.
    assert by_ips.value == pytest.approx(logged.value / 4, abs=1e-9)
    assert by_snips.value == pytest.approx(logged.value, abs=1e-9)
    assert len(evaluation.lines()) == 5

    both = await evaluate_policy(settings, max_weight=10.0, offline=True)
    names = [name for name, _ in both.rows]
    assert names[0] == "logged decisions (their actual rewards)"
    assert names[-1] == "learned offline from older half, doubly robust"
    assert {estimate.n for _, estimate in both.rows} == {45}
