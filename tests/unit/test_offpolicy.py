"""Off-policy estimates against the exactly known value of a target policy on simulated logs."""

from collections.abc import Mapping

import numpy as np
import pytest

from agent.training.policy.offpolicy import (
    Estimate,
    LoggedDecision,
    TargetPolicy,
    doubly_robust,
    fit_reward_model,
    ips,
    learn_offline,
    snips,
)
from agent.values import Strategy
from policies.bandit import BanditConfig
from policies.features import FloatArray

ARMS = tuple(Strategy)
D = 4
NAMES = tuple(f"x{i}" for i in range(D))


class World:
    """20 contexts, 8 arms, mean reward theta[arm] @ x, Gaussian noise.

    The logging policy is a fixed random softmax per context mixed with the
    uniform (every propensity ≥ 1/16); the target is epsilon-greedy on the true
    means. Both are functions of the features, and with finitely many equally
    likely contexts the target's true value is an exact finite sum.
    """

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.contexts = np.column_stack([np.ones(20), rng.uniform(-1.0, 1.0, (20, D - 1))])
        self.theta = rng.normal(0.0, 0.5, (len(ARMS), D))
        logits = rng.normal(0.0, 1.5, (20, len(ARMS)))
        soft = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        self.logging = 0.5 * soft + 0.5 / len(ARMS)
        self.noise = 0.5

    def _row(self, x: FloatArray) -> int:
        return int(np.flatnonzero(np.all(self.contexts == x, axis=1))[0])

    def target(self, x: FloatArray) -> Mapping[Strategy, float]:
        best = int(np.argmax(self.theta @ x))
        return {arm: 0.8 * (i == best) + 0.2 / len(ARMS) for i, arm in enumerate(ARMS)}

    def uniform(self, x: FloatArray) -> Mapping[Strategy, float]:
        return dict.fromkeys(ARMS, 1 / len(ARMS))

    def true_value(self, policy: TargetPolicy) -> float:
        values = []
        for x in self.contexts:
            probs = policy(x)
            values.append(sum(p * float(self.theta[ARMS.index(a)] @ x) for a, p in probs.items()))
        return float(np.mean(values))

    def logs(self, n: int, seed: int) -> list[LoggedDecision]:
        rng = np.random.default_rng(seed)
        rows = rng.integers(0, len(self.contexts), n)
        logs = []
        for row in rows:
            x, probs = self.contexts[row], self.logging[row]
            i = int(rng.choice(len(ARMS), p=probs))
            r = float(self.theta[i] @ x + rng.normal(0.0, self.noise))
            logs.append(LoggedDecision(features=x, arm=ARMS[i], propensity=probs[i], reward=r))
        return logs


def _within(estimate: Estimate, truth: float, sigmas: float = 4.0) -> bool:
    return abs(estimate.value - truth) <= sigmas * estimate.stderr


def test_estimates_agree_with_the_true_value() -> None:
    world = World()
    truth = world.true_value(world.target)
    assert truth > world.true_value(world.uniform) + 0.1  # the target is worth evaluating
    logs = world.logs(3000, seed=1)
    model = fit_reward_model(logs)
    for estimate in (
        ips(logs, world.target),
        snips(logs, world.target),
        doubly_robust(logs, world.target, model),
    ):
        assert estimate.n == 3000
        assert 0.0 < estimate.stderr < 0.1
        assert _within(estimate, truth), (estimate, truth)
    # The logging policy's own value is recovered too (weights all 1 for IPS).
    logging_policy = world.logging
    observed = np.mean([log.reward for log in logs])
    assert observed == pytest.approx(
        np.mean([logging_policy[i] @ (world.theta @ x) for i, x in enumerate(world.contexts)]),
        abs=4 * np.std([log.reward for log in logs]) / np.sqrt(3000),
    )


def test_doubly_robust_has_lower_variance_than_ips_over_seeds() -> None:
    world = World()
    truth = world.true_value(world.target)
    by_method: dict[str, list[float]] = {"ips": [], "snips": [], "dr": []}
    covered = 0
    for seed in range(20):
        logs = world.logs(800, seed=100 + seed)
        dr = doubly_robust(logs, world.target, fit_reward_model(logs))
        by_method["ips"].append(ips(logs, world.target).value)
        by_method["snips"].append(snips(logs, world.target).value)
        by_method["dr"].append(dr.value)
        covered += _within(dr, truth, sigmas=2.0)
    spread = {name: float(np.std(values)) for name, values in by_method.items()}
    assert spread["dr"] ** 2 < 0.5 * spread["ips"] ** 2  # at most half the variance
    assert spread["snips"] < spread["ips"]
    for name, values in by_method.items():
        assert np.mean(values) == pytest.approx(truth, abs=3 * spread[name] / np.sqrt(20)), name
    assert covered >= 16  # a 2-sigma interval should cover ~95% of the time


def test_learning_offline_finds_a_better_policy_and_dr_says_so() -> None:
    world = World()
    logs = world.logs(3000, seed=2)
    config = BanditConfig(alpha=0.0, epsilon=0.05)
    learned = {
        weighted: learn_offline(logs, config, features=NAMES, importance_weighted=weighted)
        for weighted in (False, True)
    }
    for bandit in learned.values():
        assert bandit.updates == 3000
        truth = world.true_value(bandit.probabilities)
        assert truth > world.true_value(world.uniform) + 0.2
        # It picks the truly best arm in most contexts.
        greedy = [max(bandit.predict(x).items(), key=lambda kv: kv[1])[0] for x in world.contexts]
        best = [ARMS[int(np.argmax(world.theta @ x))] for x in world.contexts]
        assert sum(g == b for g, b in zip(greedy, best, strict=True)) >= 16
        # Its value, estimated on fresh logs, matches the truth.
        fresh = world.logs(2000, seed=3)
        estimate = doubly_robust(fresh, bandit.probabilities, fit_reward_model(fresh))
        assert _within(estimate, truth)


def test_clipping_bounds_the_weights() -> None:
    world = World()
    logs = world.logs(500, seed=4)
    plain, clipped = ips(logs, world.target), ips(logs, world.target, max_weight=2.0)
    assert clipped.value != plain.value
    assert abs(clipped.value) <= 2.0 * max(abs(log.reward) for log in logs)
    assert clipped.stderr < plain.stderr
    assert ips(logs, world.target, max_weight=1e9) == plain


def test_bad_inputs_are_refused() -> None:
    world = World()
    x = world.contexts[0]
    with pytest.raises(ValueError, match="propensity"):
        LoggedDecision(features=x, arm=Strategy.INFORM, propensity=0.0, reward=1.0)
    with pytest.raises(ValueError, match="finite"):
        LoggedDecision(features=x, arm=Strategy.INFORM, propensity=0.5, reward=float("nan"))
    with pytest.raises(ValueError, match="no logs"):
        ips([], world.target)
    logs = world.logs(10, seed=5)
    with pytest.raises(ValueError, match="sum to"):
        ips(logs, lambda _: {Strategy.INFORM: 0.5})
    informs = [LoggedDecision(features=x, arm=Strategy.INFORM, propensity=0.5, reward=1.0)] * 3
    with pytest.raises(ValueError, match="never plays"):
        snips(informs, lambda _: {Strategy.CLARIFY: 1.0})
    with pytest.raises(ValueError, match="does not predict"):
        doubly_robust(informs, world.target, fit_reward_model(informs, arms=(Strategy.CLARIFY,)))
    frozen = logs[0].features
    with pytest.raises(ValueError, match="read-only"):
        frozen[0] = 2.0
