"""Learning from logged decisions, and what a new policy would be worth, off-policy.

A `LoggedDecision` is one turn as it was served: its feature vector, the
strategy played, the exact probability the logging policy gave it
(`Decision.propensity`) and the reward that followed (`policies.reward.reward`).
A *target* policy is any function from a feature vector to its distribution
over strategies — `LinearBandit.probabilities` of a frozen copy, or a rule
policy written as one (probability 1 on its strategy).

Estimators of the target's value V = E_x[Σ_a π(a|x) r(x, a)], each returning
an `Estimate` with a standard error:

- `ips`: the mean of ``w_i r_i`` with ``w_i = π(a_i|x_i) / μ_i``. Unbiased when
  every strategy the target may play had a positive logging propensity;
  high variance when the two policies disagree.
- `snips`: ``Σ w_i r_i / Σ w_i``. Slightly biased, consistent, usually much
  steadier than IPS, and invariant to shifting every reward by a constant.
- `doubly_robust`: the reward model's prediction for the target's
  distribution plus the IPS-weighted residual of the played arm. Unbiased if
  either the propensities or the model are right; its variance shrinks as the
  model improves. Fit the model on other logs than the ones evaluated
  (cross-fitting) when the logs are few; with thousands, fitting on the same
  logs biases the estimate negligibly.

Support matters: a deterministic logger (the rules) gives the target's other
strategies propensity 0, and no estimator can say anything about them. Only
the bandit's logs (epsilon keeps every propensity ≥ epsilon / K) can evaluate
a different policy.

`learn_offline` replays logs into a fresh `LinearBandit` to warm-start it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from agent.values import Strategy
from policies.bandit import BanditConfig, LinearBandit
from policies.features import FEATURE_NAMES, FloatArray

__all__ = [
    "Estimate",
    "LoggedDecision",
    "RewardModel",
    "RidgeRewardModel",
    "TargetPolicy",
    "doubly_robust",
    "fit_reward_model",
    "ips",
    "learn_offline",
    "snips",
]

TargetPolicy = Callable[[FloatArray], Mapping[Strategy, float]]
"""A policy to evaluate: features in, probability of each strategy out (missing means 0)."""

# How far a target's probabilities may sum from 1.
_SUM_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class LoggedDecision:
    """One served turn: features, strategy played, its logging propensity, its reward."""

    features: FloatArray
    arm: Strategy
    propensity: float
    reward: float

    def __post_init__(self) -> None:
        features = np.array(self.features, dtype=np.float64)
        if features.ndim != 1 or not np.all(np.isfinite(features)):
            raise ValueError("logged decision: features must be a finite 1-d vector")
        features.flags.writeable = False
        object.__setattr__(self, "features", features)
        if not 0.0 < self.propensity <= 1.0:
            raise ValueError(
                "logged decision: propensity must be in (0, 1]; a decision logged "
                "without one (a rule's) cannot be used for off-policy evaluation"
            )
        if not math.isfinite(self.reward):
            raise ValueError("logged decision: reward must be finite")


@dataclass(frozen=True, slots=True)
class Estimate:
    """An estimated policy value, its standard error and the number of logs behind it."""

    value: float
    stderr: float
    n: int

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """A normal-approximation confidence interval, ``value ± z * stderr``."""
        return self.value - z * self.stderr, self.value + z * self.stderr


class RewardModel(Protocol):
    def predict(self, features: FloatArray) -> Mapping[Strategy, float]:
        """The predicted reward of every strategy at `features`."""
        ...


class RidgeRewardModel:
    """Per-strategy ridge regressions, shrunk toward the mean logged reward.

    A strategy with no logs predicts that mean everywhere.
    """

    def __init__(self, arms: Sequence[Strategy], coefficients: FloatArray, offset: float) -> None:
        self._arms = tuple(arms)
        self._coefficients = coefficients
        self._offset = offset

    def predict(self, features: FloatArray) -> dict[Strategy, float]:
        values = self._coefficients @ np.asarray(features, dtype=np.float64) + self._offset
        return dict(zip(self._arms, (float(v) for v in values), strict=True))


def fit_reward_model(
    logs: Sequence[LoggedDecision],
    *,
    arms: Sequence[Strategy] = tuple(Strategy),
    ridge: float = 1.0,
) -> RidgeRewardModel:
    """Fit a `RidgeRewardModel` on `logs` (unweighted least squares per strategy)."""
    x, r = _arrays(logs)
    if not (math.isfinite(ridge) and ridge > 0.0):
        raise ValueError("reward model: ridge must be finite and > 0")
    offset = float(r.mean())
    played = np.array([log.arm for log in logs], dtype=object)
    coefficients = np.zeros((len(arms), x.shape[1]))
    for i, arm in enumerate(arms):
        mask = played == arm
        if mask.any():
            xa = x[mask]
            gram = xa.T @ xa + ridge * np.eye(x.shape[1])
            coefficients[i] = np.linalg.solve(gram, xa.T @ (r[mask] - offset))
    return RidgeRewardModel(arms, coefficients, offset)


def ips(
    logs: Sequence[LoggedDecision], target: TargetPolicy, *, max_weight: float | None = None
) -> Estimate:
    """Inverse propensity scoring; `max_weight` clips the weights (less variance, some bias)."""
    _, r = _arrays(logs)
    w, _ = _weights(logs, target, max_weight)
    return _mean(w * r)


def snips(logs: Sequence[LoggedDecision], target: TargetPolicy) -> Estimate:
    """Self-normalised IPS; its standard error is the delta-method one."""
    _, r = _arrays(logs)
    w, _ = _weights(logs, target, None)
    total = float(w.sum())
    if total <= 0.0:
        raise ValueError("off-policy: the target never plays a logged strategy; no estimate")
    value = float((w * r).sum()) / total
    stderr = math.sqrt(float((w**2 * (r - value) ** 2).sum())) / total
    return Estimate(value, stderr, len(logs))


def doubly_robust(
    logs: Sequence[LoggedDecision],
    target: TargetPolicy,
    reward_model: RewardModel,
    *,
    max_weight: float | None = None,
) -> Estimate:
    """The doubly robust estimate: model baseline plus weighted residuals."""
    _, r = _arrays(logs)
    w, dists = _weights(logs, target, max_weight)
    terms = np.empty(len(logs))
    for i, (log, probs) in enumerate(zip(logs, dists, strict=True)):
        predicted = reward_model.predict(log.features)
        missing = [arm for arm, p in probs.items() if p > 0.0 and arm not in predicted]
        if log.arm not in predicted or missing:
            raise ValueError("off-policy: the reward model does not predict every strategy needed")
        baseline = sum(p * predicted[arm] for arm, p in probs.items() if p > 0.0)
        terms[i] = baseline + w[i] * (r[i] - predicted[log.arm])
    return _mean(terms)


def learn_offline(
    logs: Sequence[LoggedDecision],
    config: BanditConfig | None = None,
    *,
    features: Sequence[str] = FEATURE_NAMES,
    importance_weighted: bool = False,
    max_weight: float = 10.0,
) -> LinearBandit:
    """A fresh bandit that has replayed `logs` as updates; logs of other arms are skipped.

    Bias: each arm's regression is fitted on the contexts where the logger
    played that arm. If reward is linear in the features that is harmless (a
    well-specified regression is not biased by which x it sees); if not, the
    fit leans toward the contexts the logger favoured for that arm. With
    `importance_weighted`, each update is weighted by ``min(1 / propensity,
    max_weight)``, which re-targets every arm's fit to the overall context
    distribution (clipping trades a little of that back for lower variance);
    the weights are rescaled to average 1 per arm so that the confidence
    bonus still reflects how many observations an arm has had. Replay is a
    warm start, not a simulation: the online bandit would have chosen
    differently and seen other rewards.
    """
    bandit = LinearBandit(config, features=features)
    if not (math.isfinite(max_weight) and max_weight >= 1.0):
        raise ValueError("learn offline: max_weight must be finite and ≥ 1")
    kept = [log for log in logs if log.arm in bandit.arms]
    weights = np.ones(len(kept))
    if importance_weighted:
        weights = np.minimum(1.0 / np.array([log.propensity for log in kept]), max_weight)
        played = np.array([log.arm for log in kept], dtype=object)
        for arm in bandit.arms:
            mask = played == arm
            if mask.any():
                weights[mask] /= weights[mask].mean()
    for log, weight in zip(kept, weights, strict=True):
        bandit.update(log.features, log.arm, log.reward, weight=float(weight))
    return bandit


def _arrays(logs: Sequence[LoggedDecision]) -> tuple[FloatArray, FloatArray]:
    if not logs:
        raise ValueError("off-policy: no logs")
    dims = {log.features.shape for log in logs}
    if len(dims) != 1:
        raise ValueError(f"off-policy: logs have features of different shapes {sorted(dims)}")
    x = np.stack([log.features for log in logs])
    r = np.array([log.reward for log in logs], dtype=np.float64)
    return x, r


def _distribution(target: TargetPolicy, features: FloatArray) -> Mapping[Strategy, float]:
    probs = target(features)
    values = list(probs.values())
    if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in values):
        raise ValueError("off-policy: a target probability is outside [0, 1]")
    if abs(sum(values) - 1.0) > _SUM_TOLERANCE:
        raise ValueError(f"off-policy: target probabilities sum to {sum(values)}, not 1")
    return probs


def _weights(
    logs: Sequence[LoggedDecision], target: TargetPolicy, max_weight: float | None
) -> tuple[FloatArray, list[Mapping[Strategy, float]]]:
    """The importance weights ``π(a_i|x_i) / μ_i`` (clipped) and the target's distributions."""
    if max_weight is not None and not (math.isfinite(max_weight) and max_weight > 0.0):
        raise ValueError("off-policy: max_weight must be finite and > 0")
    dists = [_distribution(target, log.features) for log in logs]
    w = np.array([d.get(log.arm, 0.0) / log.propensity for d, log in zip(dists, logs, strict=True)])
    return (w if max_weight is None else np.minimum(w, max_weight)), dists


def _mean(terms: FloatArray) -> Estimate:
    n = len(terms)
    stderr = float(terms.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    return Estimate(float(terms.mean()), stderr, n)
