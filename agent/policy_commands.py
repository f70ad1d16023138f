"""`heartline policy evaluate`: the learned policy's value, estimated from logged decisions.

The logs are the decisions the bandit served (with their propensities and
context features) and what followed them; the target is the bandit as it is
stored now. Estimates: IPS, self-normalised IPS and doubly robust, beside the
mean reward the logged decisions actually earned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.config import Settings
from agent.errors import ConfigError
from agent.values import Strategy
from memory.sql import open_engine, upgrade_schema
from memory.sql.decision_log import logged_outcomes
from memory.sql.policy_state import load_policy_state
from policies.bandit import LinearBandit, reward
from policies.learning import feedback_polarity
from policies.offpolicy import (
    Estimate,
    LoggedDecision,
    doubly_robust,
    fit_reward_model,
    ips,
    snips,
)

__all__ = ["Evaluation", "evaluate_policy"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    logged: Estimate
    ips: Estimate
    snips: Estimate
    doubly_robust: Estimate
    skipped: int

    def lines(self) -> list[str]:
        rows = [
            ("logged decisions (their actual rewards)", self.logged),
            ("stored bandit, IPS", self.ips),
            ("stored bandit, self-normalised IPS", self.snips),
            ("stored bandit, doubly robust", self.doubly_robust),
        ]
        head = f"{'':<42}{'value':>9}{'± 1.96 se':>11}{'n':>8}"
        return [head] + [
            f"{name:<42}{e.value:>9.4f}{1.96 * e.stderr:>11.4f}{e.n:>8}" for name, e in rows
        ]


async def evaluate_policy(settings: Settings, *, max_weight: float | None) -> Evaluation:
    """Estimate the stored bandit's value on the tenant's logged decisions."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = open_engine(settings.resolved_database_url())
    try:
        await upgrade_schema(engine)
        outcomes = await logged_outcomes(engine, tenant=settings.tenant)
        state = await load_policy_state(engine, tenant=settings.tenant, policy="bandit")
    finally:
        await engine.dispose()
    if state is None:
        raise ConfigError(f"no learned bandit stored for tenant {settings.tenant!r} yet")
    target = LinearBandit.from_state(state)
    logs, skipped = [], 0
    for outcome in outcomes:
        value = reward(
            feedback_polarity(outcome.feedback),
            outcome.valence,
            outcome.next_valence,
            feedback_weight=settings.reward_feedback_weight,
            valence_weight=settings.reward_valence_weight,
        )
        if value is None or len(outcome.features) != target.dim:
            skipped += 1
            continue
        logs.append(
            LoggedDecision(
                features=np.asarray(outcome.features),
                arm=Strategy(outcome.strategy),
                propensity=outcome.propensity,
                reward=value,
            )
        )
    if not logs:
        raise ConfigError(
            f"no logged bandit decision with an outcome in tenant {settings.tenant!r} "
            f"({skipped} without one); the bandit decides once it has learned from 100 turns"
        )
    rewards = np.array([log.reward for log in logs])
    logged = Estimate(
        value=float(rewards.mean()),
        stderr=float(rewards.std(ddof=1) / np.sqrt(len(logs))) if len(logs) > 1 else 0.0,
        n=len(logs),
    )
    return Evaluation(
        logged=logged,
        ips=ips(logs, target.probabilities, max_weight=max_weight),
        snips=snips(logs, target.probabilities),
        doubly_robust=doubly_robust(
            logs, target.probabilities, fit_reward_model(logs), max_weight=max_weight
        ),
        skipped=skipped,
    )
