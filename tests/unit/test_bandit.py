import copy
import json
from collections import Counter
from typing import Any

import numpy as np
import pytest

from agent.emotion.labels import reading_from
from agent.errors import ConfigError
from agent.values import Action, HistorySummary, Strategy, Tone, TurnContext
from policies.bandit import BanditConfig, LinearBandit
from policies.bandit_policy import DEFAULT_TONES, BanditPolicy
from policies.features import FloatArray, context_features
from policies.reward import reward

D = 6
NAMES = tuple(f"x{i}" for i in range(D))


class Problem:
    """A linear contextual problem: 8 arms, mean reward theta[arm] @ x, a clear best arm."""

    def __init__(self, seed: int, *, noise: float = 0.3, margin: float = 0.2) -> None:
        self.rng = np.random.default_rng(seed)
        self.theta = self.rng.normal(size=(len(Strategy), D))
        self.noise = noise
        self.margin = margin

    def context(self) -> FloatArray:
        while True:  # rejection: the best arm beats the runner-up by `margin`
            x = np.concatenate([[1.0], self.rng.uniform(-1.0, 1.0, D - 1)])
            means = np.sort(self.theta @ x)
            if means[-1] - means[-2] >= self.margin:
                return x

    def means(self, x: FloatArray) -> dict[Strategy, float]:
        return dict(zip(Strategy, (float(m) for m in self.theta @ x), strict=True))

    def pull(self, x: FloatArray, arm: Strategy) -> float:
        return self.means(x)[arm] + float(self.rng.normal(0.0, self.noise))


def _trained(rounds: int, *, seed: int = 0, config: BanditConfig | None = None) -> LinearBandit:
    problem, bandit = Problem(seed), LinearBandit(config, features=NAMES)
    for _ in range(rounds):
        x = problem.context()
        arm = bandit.choose(x, problem.rng).arm
        bandit.update(x, arm, problem.pull(x, arm))
    return bandit


def test_converges_to_the_known_best_arm_with_sublinear_learning_regret() -> None:
    problem = Problem(seed=1)
    bandit = LinearBandit(BanditConfig(alpha=1.0, epsilon=0.05), features=NAMES)
    picked_best, regret, greedy_regret, floor = [], [], [], []
    for _ in range(2000):
        x = problem.context()
        means = problem.means(x)
        best = max(means.values())
        probs = bandit.probabilities(x)
        scores = bandit.scores(x)
        regret.append(sum(p * (best - means[arm]) for arm, p in probs.items()))
        floor.append(0.05 * sum(best - m for m in means.values()) / len(means))
        greedy_regret.append(best - means[max(scores, key=scores.__getitem__)])
        choice = bandit.choose(x, problem.rng)
        picked_best.append(means[choice.arm] == best)
        bandit.update(x, choice.arm, problem.pull(x, choice.arm))

    assert np.mean(picked_best[-500:]) >= 0.90
    # The greedy choice's regret all but vanishes: the learning regret is sublinear.
    assert sum(greedy_regret[-500:]) < sum(greedy_regret[:500]) / 10
    # What is left of the expected regret is the price of the epsilon floor (ε times the
    # mean gap per round), which keeps every propensity positive: linear by design.
    assert sum(regret[-500:]) < sum(regret[:500])
    assert sum(regret[-500:]) < 1.1 * sum(floor[-500:])
    assert bandit.updates == 2000


def test_propensities_are_exact_and_form_a_distribution() -> None:
    config = BanditConfig(epsilon=0.1)
    bandit = _trained(300, config=config)
    rng = np.random.default_rng(7)
    x = Problem(seed=0).context()
    probs = bandit.probabilities(x)
    assert set(probs) == set(Strategy)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-12)
    assert all(0.1 / 8 - 1e-15 <= p <= 1.0 for p in probs.values())

    draws = [bandit.choose(x, rng) for _ in range(4000)]
    assert all(0.0 < c.propensity <= 1.0 and c.propensity == probs[c.arm] for c in draws)
    frequency = Counter(c.arm for c in draws)
    for arm, p in probs.items():
        assert frequency[arm] / 4000 == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / 4000))


def test_a_cold_bandit_is_uniform() -> None:
    bandit = LinearBandit(features=NAMES)
    probs = bandit.probabilities(np.ones(D))
    assert set(probs.values()) == {1 / 8}
    assert bandit.choose(np.ones(D), np.random.default_rng(0)).greedy


def test_state_round_trip_gives_identical_choices() -> None:
    bandit = _trained(300)
    state = bandit.to_state()
    restored = LinearBandit.from_state(json.loads(json.dumps(state)))
    assert restored.to_state() == state
    assert restored.counts == bandit.counts

    contexts = [Problem(seed=5).context() for _ in range(50)]
    rng_a, rng_b = np.random.default_rng(11), np.random.default_rng(11)
    assert [bandit.choose(x, rng_a) for x in contexts] == [
        restored.choose(x, rng_b) for x in contexts
    ]


def _corrupt(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    state = copy.deepcopy(_trained(20).to_state())
    target = state
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return state


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("version",), 2, "version"),
        (("config", "arms"), ["empathize", "shout", *[s.value for s in Strategy][2:]], "unknown"),
        (("config", "epsilon"), 0.0, "epsilon"),
        (("config", "alpha"), "1", "alpha"),
        (("features",), ["x0", "x0"], "features"),
        (("stats",), [], "stats"),
        (("stats", 0, "arm"), "inform", "expected"),
        (("stats", 0, "count"), -1, "count"),
        (("stats", 0, "A"), [[1.0, 0.0]], "shape"),
        (("stats", 0, "A"), [[1.0] * D] * D, "positive definite"),
        (("stats", 0, "b"), [float("nan")] * D, "non-finite"),
        (("stats", 0, "b"), ["a"] * D, "numbers"),
        (("stats", 0, "extra"), 1, "keys"),
    ],
)
def test_corrupt_state_raises_value_error(path: tuple[Any, ...], value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LinearBandit.from_state(_corrupt(path, value))


def test_a_non_symmetric_matrix_is_refused() -> None:
    state = _trained(20).to_state()
    state["stats"][0]["A"][0][1] += 0.5
    with pytest.raises(ValueError, match="symmetric"):
        LinearBandit.from_state(state)


def test_absorbing_workers_equals_one_bandit_that_saw_everything() -> None:
    problem = Problem(seed=3)
    data = []
    for _ in range(300):
        x = problem.context()
        arm = list(Strategy)[int(problem.rng.integers(8))]
        data.append((x, arm, problem.pull(x, arm)))

    single = LinearBandit(features=NAMES)
    for x, arm, r in data:
        single.update(x, arm, r)

    base = LinearBandit(features=NAMES)
    for x, arm, r in data[:100]:
        base.update(x, arm, r)
    workers = [base.copy(), base.copy()]
    for i, (x, arm, r) in enumerate(data[100:]):
        workers[i % 2].update(x, arm, r)
    shared = base.copy()
    for worker in reversed(workers):
        shared.absorb(worker, base=base)

    assert shared.counts == single.counts
    for x, _, _ in data[:20]:
        merged, direct = shared.probabilities(x), single.probabilities(x)
        assert merged == pytest.approx(direct)
        assert shared.scores(x) == pytest.approx(single.scores(x))

    with pytest.raises(ValueError, match="fewer updates"):
        shared.absorb(base, base=workers[0])
    with pytest.raises(ValueError, match="same config"):
        shared.absorb(LinearBandit(BanditConfig(alpha=2.0), features=NAMES), base=base)


def test_update_and_config_are_validated() -> None:
    bandit = LinearBandit(BanditConfig(arms=(Strategy.INFORM, Strategy.CLARIFY)), features=NAMES)
    with pytest.raises(ValueError, match="not one of"):
        bandit.update(np.ones(D), Strategy.CELEBRATE, 1.0)
    with pytest.raises(ValueError, match="shape"):
        bandit.update(np.ones(D + 1), Strategy.INFORM, 1.0)
    with pytest.raises(ValueError, match="finite"):
        bandit.update(np.ones(D), Strategy.INFORM, float("inf"))
    with pytest.raises(ConfigError, match="epsilon"):
        BanditConfig(epsilon=0.0)
    with pytest.raises(ConfigError, match="twice"):
        BanditConfig(arms=(Strategy.INFORM, Strategy.INFORM))


@pytest.mark.parametrize(
    ("feedback", "before", "after", "weights", "expected"),
    [
        (1, 0.0, None, (1.0, 1.0), 1.0),  # feedback only
        (-1, 0.0, None, (1.0, 1.0), -1.0),
        (None, -0.5, 0.5, (1.0, 1.0), 0.5),  # valence only: a change of +1 is half the scale
        (None, 1.0, -1.0, (1.0, 1.0), -1.0),
        (1, 0.0, -0.5, (1.0, 1.0), (1.0 - 0.25) / 2),  # both: the weighted mean
        (1, 0.0, -0.5, (3.0, 1.0), (3.0 - 0.25) / 4),
        (1, 0.0, -0.5, (0.0, 1.0), -0.25),  # a zero weight ignores its signal
        (None, 0.2, None, (1.0, 1.0), None),  # nothing to learn from
        (1, 0.0, None, (0.0, 1.0), None),
    ],
)
def test_reward(
    feedback: int | None,
    before: float,
    after: float | None,
    weights: tuple[float, float],
    expected: float | None,
) -> None:
    got = reward(feedback, before, after, feedback_weight=weights[0], valence_weight=weights[1])
    assert got == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    ("args", "message"),
    [((2, 0.0, None), "feedback"), ((1, 1.5, None), "valence_before"), ((1, 0.0, -2.0), "after")],
)
def test_reward_refuses_values_out_of_range(
    args: tuple[int, float, float | None], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        reward(*args)
    with pytest.raises(ValueError, match="weight"):
        reward(1, 0.0, None, feedback_weight=-1.0)


def _turn(scores: dict[str, float]) -> TurnContext:
    return TurnContext(
        text="", emotion=reading_from(scores, model="test"), history=HistorySummary.first_time()
    )


_ANGRY, _HAPPY = _turn({"anger": 0.9, "neutral": 0.1}), _turn({"joy": 0.9, "neutral": 0.1})


def _taught_policy(seed: int, *, min_updates: int = 100) -> BanditPolicy:
    """A policy whose bandit learned: de-escalate anger, celebrate joy."""
    rng = np.random.default_rng(seed)
    bandit = LinearBandit()
    best = {id(_ANGRY): Strategy.DE_ESCALATE, id(_HAPPY): Strategy.CELEBRATE}
    for i in range(400):
        context = (_ANGRY, _HAPPY)[i % 2]
        x = context_features(context)
        arm = bandit.choose(x, rng).arm
        bandit.update(x, arm, 1.0 if arm is best[id(context)] else -0.2)
    return BanditPolicy(bandit, rng=np.random.default_rng(seed), min_updates=min_updates)


def test_policy_decides_with_the_propensity_of_its_choice() -> None:
    policy = _taught_policy(0)
    decision = policy.decide(_ANGRY, flow_state="resolve")
    assert decision is not None
    assert (decision.action, decision.strategy) == (Action.REPLY, Strategy.DE_ESCALATE)
    assert decision.tone is Tone.CALM
    assert decision.policy == "bandit"
    expected = policy.bandit.probabilities(context_features(_ANGRY, flow_state="resolve"))
    assert decision.propensity == expected[Strategy.DE_ESCALATE] == decision.confidence
    assert decision.propensity == pytest.approx(0.95 + 0.05 / 8)
    assert decision.reasons[0].startswith("learned: de-escalate scored ")
    assert " over " in decision.reasons[0]

    happy = policy.decide(_HAPPY)
    assert happy is not None
    assert (happy.strategy, happy.tone) == (Strategy.CELEBRATE, Tone.UPBEAT)


def test_policy_is_reproducible_from_its_seed_and_explains_exploration() -> None:
    policy_a, policy_b = _taught_policy(4), _taught_policy(4)
    runs_a = [policy_a.decide(_ANGRY) for _ in range(200)]
    runs_b = [policy_b.decide(_ANGRY) for _ in range(200)]
    assert runs_a == runs_b
    explored = [d for d in runs_a if d is not None and d.strategy is not Strategy.DE_ESCALATE]
    assert explored, "200 draws at epsilon 0.05 should explore at least once"
    assert explored[0].reasons[0].startswith("exploring: ")
    assert explored[0].propensity == pytest.approx(0.05 / 8)


def test_policy_abstains_while_cold_and_checks_its_bandit() -> None:
    rng = np.random.default_rng(0)
    assert BanditPolicy(LinearBandit(), rng=rng).decide(_ANGRY) is None
    assert BanditPolicy(LinearBandit(), rng=rng, min_updates=0).decide(_ANGRY) is not None
    with pytest.raises(ConfigError, match="features"):
        BanditPolicy(LinearBandit(features=NAMES), rng=rng)
    with pytest.raises(ConfigError, match="tone"):
        BanditPolicy(LinearBandit(), rng=rng, tones={Strategy.INFORM: Tone.NEUTRAL})
    assert set(DEFAULT_TONES) == set(Strategy)
