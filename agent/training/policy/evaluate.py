"""`heartline policy evaluate`: the learned policy's value, estimated from logged decisions.

The logs are the decisions the bandit served (with their propensities and
context features) and what followed them; the target is the bandit as it is
stored now, and with ``--offline`` a bandit learned from the older half of the
logs, judged on the newer half. Estimates: IPS, self-normalised IPS and doubly
robust, beside the mean reward the logged decisions actually earned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.config import Settings
from agent.errors import ConfigError
from agent.training.policy.offpolicy import (
    Estimate,
    LoggedDecision,
    doubly_robust,
    fit_reward_model,
    ips,
    learn_offline,
    snips,
)
from agent.values import Strategy
from memory.sql import open_engine, upgrade_schema
from memory.sql.decision_log import LoggedOutcome, logged_outcomes
from memory.sql.policy_state import load_policy_state
from policies.bandit import LinearBandit
from policies.learning import feedback_polarity
from policies.reward import reward

__all__ = ["Evaluation", "evaluate_policy"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Named estimates, one row each, and how many logs had no outcome."""

    rows: tuple[tuple[str, Estimate], ...]
    skipped: int

    def lines(self) -> list[str]:
        head = f"{'':<48}{'value':>9}{'± 1.96 se':>11}{'n':>8}"
        return [head] + [
            f"{name:<48}{e.value:>9.4f}{1.96 * e.stderr:>11.4f}{e.n:>8}" for name, e in self.rows
        ]


async def evaluate_policy(
    settings: Settings, *, max_weight: float | None, offline: bool = False
) -> Evaluation:
    """Estimate the stored bandit's value on the tenant's logged decisions.

    With `offline`, also learn a bandit from the older half of the logs
    (importance-weighted replay) and estimate both on the newer half, so the
    learned one is judged on decisions it did not learn from.
    """
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
    stored = LinearBandit.from_state(state)
    logs, skipped = _logs(outcomes, settings, stored.dim)
    if len(logs) < (4 if offline else 1):
        raise ConfigError(
            f"too few logged bandit decisions with an outcome in tenant {settings.tenant!r} "
            f"({len(logs)}; {skipped} without one); the bandit decides once it has learned "
            "from 100 turns"
        )
    if not offline:
        return Evaluation(
            rows=_estimates("stored bandit", stored, logs, max_weight), skipped=skipped
        )
    half = len(logs) // 2
    learned = learn_offline(logs[:half], stored.config, importance_weighted=True)
    rows = _estimates("stored bandit, newer half", stored, logs[half:], max_weight)
    rows += _estimates("learned offline from older half", learned, logs[half:], max_weight)[1:]
    return Evaluation(rows=rows, skipped=skipped)


def _logs(
    outcomes: list[LoggedOutcome], settings: Settings, dim: int
) -> tuple[list[LoggedDecision], int]:
    logs, skipped = [], 0
    for outcome in outcomes:
        value = reward(
            feedback_polarity(outcome.feedback),
            outcome.valence,
            outcome.next_valence,
            feedback_weight=settings.reward_feedback_weight,
            valence_weight=settings.reward_valence_weight,
        )
        if value is None or len(outcome.features) != dim:
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
    return logs, skipped


def _estimates(
    name: str, target: LinearBandit, logs: list[LoggedDecision], max_weight: float | None
) -> tuple[tuple[str, Estimate], ...]:
    """The logged rewards, then IPS, SNIPS and DR estimates of `target` on `logs`."""
    rewards = np.array([log.reward for log in logs])
    stderr = float(rewards.std(ddof=1) / np.sqrt(len(logs))) if len(logs) > 1 else 0.0
    return (
        (
            "logged decisions (their actual rewards)",
            Estimate(float(rewards.mean()), stderr, len(logs)),
        ),
        (f"{name}, IPS", ips(logs, target.probabilities, max_weight=max_weight)),
        (f"{name}, self-normalised IPS", snips(logs, target.probabilities)),
        (
            f"{name}, doubly robust",
            doubly_robust(
                logs, target.probabilities, fit_reward_model(logs), max_weight=max_weight
            ),
        ),
    )
