"""The learned strategy chooser: disjoint LinUCB with a uniform exploration floor.

Why this algorithm: each strategy ("arm") keeps a ridge regression of reward on
the context features (Li et al. 2010, disjoint LinUCB). An arm's score is its
predicted reward plus ``alpha * sqrt(x' A⁻¹ x)``, an upper confidence bound
that is wide where the arm has seen little data like `x`. Instead of always
playing the top score, the bandit plays

    P(arm) = epsilon / K + (1 - epsilon) / |G|   if arm is in G,
    P(arm) = epsilon / K                          otherwise,

where ``G`` is the set of arms tied at the top score and ``K`` the number of
arms. This is a closed-form distribution, so the propensity of every choice is
*exact* — the number the draw was made with, not an estimate — which is what
IPS and doubly robust off-policy evaluation need. Thompson sampling explores
well too, but its action probabilities are integrals over the posterior that
can only be estimated by Monte Carlo; a softmax over scores is exact but its
temperature mixes two unrelated scales (reward and confidence width). The
epsilon floor also bounds every importance weight by ``K / epsilon``.

Online learning is the ridge update ``A += x x'``, ``b += r x`` per played arm.
The statistics are sums, so what several workers learned can be merged
exactly (`LinearBandit.absorb`); `to_state` / `from_state` persist them as
JSON-ready data that round-trips bit for bit.

Everything here is pure: randomness comes only from the `numpy.random.Generator`
a caller passes in (or gives `policies.bandit_policy.BanditPolicy`), so a seed
reproduces every choice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.errors import ConfigError
from agent.values import Strategy
from policies.features import FEATURE_NAMES, FloatArray

IntArray = npt.NDArray[np.int64]

__all__ = ["STATE_VERSION", "BanditConfig", "Choice", "LinearBandit"]

STATE_VERSION = 1

# Scores this close to the top count as tied, so both `choose` and
# `probabilities` split the greedy mass the same way among them.
_TIE = 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class BanditConfig:
    """The bandit's arms and hyper-parameters.

    `alpha` scales the confidence bonus (0 makes the greedy part pure
    exploitation); `epsilon` is the probability mass spread evenly over all
    arms, which keeps every propensity at least ``epsilon / len(arms)``;
    `ridge` is the prior precision λ, each arm's ``A`` starting at ``λ I``.
    Rewards are expected in about [-1, 1] (see `reward`); `alpha` is on that scale.
    """

    arms: tuple[Strategy, ...] = tuple(Strategy)
    alpha: float = 1.0
    epsilon: float = 0.05
    ridge: float = 1.0

    def __post_init__(self) -> None:
        if not self.arms:
            raise ConfigError("bandit: `arms` must name at least one strategy")
        if not all(isinstance(arm, Strategy) for arm in self.arms):
            raise ConfigError("bandit: every arm must be a `Strategy` member")
        if len(set(self.arms)) != len(self.arms):
            raise ConfigError("bandit: `arms` lists a strategy twice; list each once")
        if not (math.isfinite(self.alpha) and self.alpha >= 0.0):
            raise ConfigError("bandit: `alpha` must be a finite number ≥ 0 (try 1.0)")
        if not 0.0 < self.epsilon <= 1.0:
            raise ConfigError(
                "bandit: `epsilon` must be in (0, 1]; it must be positive so that every "
                "arm keeps a propensity off-policy evaluation can divide by (try 0.05)"
            )
        if not (math.isfinite(self.ridge) and self.ridge > 0.0):
            raise ConfigError("bandit: `ridge` must be a finite number > 0 (try 1.0)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    """One draw: the arm, the exact probability it was drawn with, and every arm's score.

    `greedy` says whether the arm was among the top-scored ones (rather than
    an exploration pick).
    """

    arm: Strategy
    propensity: float
    scores: dict[Strategy, float] = field(default_factory=dict)
    greedy: bool = True


class LinearBandit:
    """Disjoint LinUCB with an epsilon floor over `config.arms` (see the module docstring).

    `features` names the slots of the vectors it is given; it defaults to
    `policies.features.FEATURE_NAMES` and is stored with the state so a bandit
    trained on another layout cannot be loaded by mistake. Not thread-safe:
    give each worker its own instance and merge with `absorb`.
    """

    def __init__(
        self, config: BanditConfig | None = None, *, features: Sequence[str] = FEATURE_NAMES
    ) -> None:
        self._config = config or BanditConfig()
        self._features = tuple(features)
        if not self._features or len(set(self._features)) != len(self._features):
            raise ConfigError("bandit: `features` must be a non-empty list of distinct names")
        k, d = len(self._config.arms), len(self._features)
        self._index = {arm: i for i, arm in enumerate(self._config.arms)}
        self._a = np.stack([np.eye(d) * self._config.ridge for _ in range(k)])
        self._b = np.zeros((k, d))
        self._counts = np.zeros(k, dtype=np.int64)
        self._a_inv = np.empty((k, d, d))
        self._theta = np.empty((k, d))
        for i in range(k):
            self._refresh(i)

    # Properties

    @property
    def config(self) -> BanditConfig:
        return self._config

    @property
    def features(self) -> tuple[str, ...]:
        return self._features

    @property
    def dim(self) -> int:
        return len(self._features)

    @property
    def arms(self) -> tuple[Strategy, ...]:
        return self._config.arms

    @property
    def counts(self) -> dict[Strategy, int]:
        """How many updates each arm has had."""
        return {arm: int(n) for arm, n in zip(self.arms, self._counts, strict=True)}

    @property
    def updates(self) -> int:
        """How many updates the bandit has had in all."""
        return int(self._counts.sum())

    # Choosing

    def scores(self, x: FloatArray) -> dict[Strategy, float]:
        """Each arm's upper confidence bound at `x`: predicted reward plus the bonus."""
        return dict(zip(self.arms, (float(s) for s in self._scores(self._check(x))), strict=True))

    def predict(self, x: FloatArray) -> dict[Strategy, float]:
        """Each arm's predicted (mean) reward at `x`, without the exploration bonus."""
        means = self._theta @ self._check(x)
        return dict(zip(self.arms, (float(m) for m in means), strict=True))

    def probabilities(self, x: FloatArray) -> dict[Strategy, float]:
        """The exact distribution `choose` draws from at `x`, as it stands now.

        It changes with every update; off-policy evaluation of this bandit as a
        target policy evaluates a frozen copy (`copy`).
        """
        probs = _distribution(self._scores(self._check(x)), self._config.epsilon)
        return dict(zip(self.arms, (float(p) for p in probs), strict=True))

    def choose(self, x: FloatArray, rng: np.random.Generator) -> Choice:
        """Draw an arm from `probabilities(x)`, consuming one uniform draw of `rng`."""
        scores = self._scores(self._check(x))
        probs = _distribution(scores, self._config.epsilon)
        i = int(rng.choice(len(probs), p=probs))
        return Choice(
            arm=self.arms[i],
            propensity=float(probs[i]),
            scores=dict(zip(self.arms, (float(s) for s in scores), strict=True)),
            greedy=bool(scores[i] >= _top(scores)),
        )

    # Learning

    def update(self, x: FloatArray, arm: Strategy, reward: float, *, weight: float = 1.0) -> None:
        """Learn that playing `arm` at `x` earned `reward`.

        Update on every rewarded turn whichever policy chose its strategy: each
        arm's regression is conditional on `x`, so data from other policies
        teaches it too. `weight` scales the observation (`learn_offline` uses
        clipped inverse propensities).
        """
        x = self._check(x)
        if arm not in self._index:
            raise ValueError(f"bandit: {arm!r} is not one of this bandit's arms")
        if not math.isfinite(reward):
            raise ValueError("bandit: reward must be finite")
        if not (math.isfinite(weight) and weight > 0.0):
            raise ValueError("bandit: weight must be finite and > 0")
        i = self._index[arm]
        self._a[i] += weight * np.outer(x, x)
        self._b[i] += (weight * reward) * x
        self._counts[i] += 1
        self._refresh(i)

    def copy(self) -> LinearBandit:
        """An independent copy, e.g. a worker's base to `absorb` against later."""
        twin = LinearBandit(self._config, features=self._features)
        twin._set_statistics(self._a.copy(), self._b.copy(), self._counts.copy())
        return twin

    def absorb(self, worker: LinearBandit, *, base: LinearBandit) -> None:
        """Add what `worker` learned since it copied `base` to this bandit, in place.

        The statistics are sums, so this is what one bandit that had seen every
        worker's updates would hold (up to float rounding), in any order of
        merging. How to share across workers: each worker loads the latest
        persisted state, keeps a `copy` as its base, updates locally and
        periodically sends ``(worker, base)``; the owner of the shared state
        loads it, `absorb`s, persists, and the worker reloads and rebases.
        """
        for other in (worker, base):
            if other.config != self._config or other.features != self._features:
                raise ValueError("bandit: can only merge bandits with the same config and features")
        if np.any(worker._counts < base._counts):
            raise ValueError("bandit: the worker has fewer updates than its base; wrong base?")
        a = self._a + (worker._a - base._a)
        b = self._b + (worker._b - base._b)
        self._set_statistics(a, b, self._counts + (worker._counts - base._counts))

    # Persistence

    def to_state(self) -> dict[str, Any]:
        """The whole bandit as JSON-ready data; `from_state` rebuilds it exactly.

        The format (version 1)::

            {"version": 1,
             "config": {"arms": ["empathize", ...], "alpha": 1.0, "epsilon": 0.05,
                        "ridge": 1.0},
             "features": ["bias", ...],
             "stats": [{"arm": "empathize", "count": 12, "A": [[...], ...], "b": [...]},
                       ...]}

        ``stats`` follows ``config.arms``; ``A`` is d by d and ``b`` has d entries.
        Floats are Python floats, which `json` writes and reads back exactly.
        """
        return {
            "version": STATE_VERSION,
            "config": {
                "arms": [arm.value for arm in self.arms],
                "alpha": self._config.alpha,
                "epsilon": self._config.epsilon,
                "ridge": self._config.ridge,
            },
            "features": list(self._features),
            "stats": [
                {
                    "arm": arm.value,
                    "count": int(self._counts[i]),
                    "A": self._a[i].tolist(),
                    "b": self._b[i].tolist(),
                }
                for i, arm in enumerate(self.arms)
            ],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> LinearBandit:
        """Rebuild a bandit from `to_state` data; ValueError says what is wrong with it."""
        config, features, a, b, counts = _parse_state(state)
        bandit = cls(config, features=features)
        bandit._set_statistics(a, b, counts)
        return bandit

    # Internals

    def _check(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.dim,):
            raise ValueError(
                f"bandit: expected a feature vector of shape ({self.dim},), got {x.shape}"
            )
        if not np.all(np.isfinite(x)):
            raise ValueError("bandit: feature vector has a non-finite value")
        return x

    def _scores(self, x: FloatArray) -> FloatArray:
        spread = np.einsum("kij,i,j->k", self._a_inv, x, x)
        bonus: FloatArray = self._config.alpha * np.sqrt(np.maximum(spread, 0.0))
        return self._theta @ x + bonus

    def _set_statistics(self, a: FloatArray, b: FloatArray, counts: IntArray) -> None:
        self._a, self._b, self._counts = a, b, counts.astype(np.int64)
        for i in range(len(self.arms)):
            self._refresh(i)

    def _refresh(self, i: int) -> None:
        # Recomputed from A (never by rank-one updates) so that a bandit rebuilt
        # from its state holds bit-identical parameters and makes identical choices.
        self._a_inv[i] = np.linalg.inv(self._a[i])
        self._theta[i] = self._a_inv[i] @ self._b[i]


def _top(scores: FloatArray) -> float:
    """The lowest score that counts as tied with the best."""
    best = float(scores.max())
    return best - _TIE * max(1.0, abs(best))


def _distribution(scores: FloatArray, epsilon: float) -> FloatArray:
    greedy = scores >= _top(scores)
    probs = np.full(len(scores), epsilon / len(scores))
    probs[greedy] += (1.0 - epsilon) / int(greedy.sum())
    result: FloatArray = np.minimum(probs, 1.0)
    return result


def _parse_state(
    state: Mapping[str, Any],
) -> tuple[BanditConfig, tuple[str, ...], FloatArray, FloatArray, IntArray]:
    if not isinstance(state, Mapping):
        raise ValueError("bandit state: expected a mapping as written by `to_state`")
    _expect_keys(state, ("version", "config", "features", "stats"), "bandit state")
    if state["version"] != STATE_VERSION:
        raise ValueError(
            f"bandit state: version {state['version']!r} is not supported; "
            f"this code reads version {STATE_VERSION}"
        )
    config = _parse_config(state["config"])
    features = state["features"]
    if (
        not isinstance(features, list)
        or not features
        or not all(isinstance(f, str) for f in features)
        or len(set(features)) != len(features)
    ):
        raise ValueError("bandit state: `features` must be a non-empty list of distinct names")
    stats = state["stats"]
    if not isinstance(stats, list) or len(stats) != len(config.arms):
        raise ValueError(
            f"bandit state: `stats` must list {len(config.arms)} arms, in config order"
        )
    d = len(features)
    a, b = np.empty((len(stats), d, d)), np.empty((len(stats), d))
    counts = np.empty(len(stats), dtype=np.int64)
    for i, (arm, entry) in enumerate(zip(config.arms, stats, strict=True)):
        where = f"bandit state: stats[{i}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where} must be a mapping")
        _expect_keys(entry, ("arm", "count", "A", "b"), where)
        if entry["arm"] != arm.value:
            raise ValueError(f"{where} is for {entry['arm']!r}, expected {arm.value!r}")
        count = entry["count"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"{where}: `count` must be an integer ≥ 0")
        a[i], b[i], counts[i] = (
            _matrix(entry["A"], (d, d), where),
            _matrix(entry["b"], (d,), where),
            count,
        )
        if not np.allclose(a[i], a[i].T, rtol=1e-12, atol=0.0):
            raise ValueError(f"{where}: `A` is not symmetric")
        try:
            np.linalg.cholesky(a[i])
        except np.linalg.LinAlgError:
            raise ValueError(f"{where}: `A` is not positive definite") from None
    return config, tuple(features), a, b, counts


def _parse_config(raw: object) -> BanditConfig:
    if not isinstance(raw, Mapping):
        raise ValueError("bandit state: `config` must be a mapping")
    _expect_keys(raw, ("arms", "alpha", "epsilon", "ridge"), "bandit state: config")
    names = raw["arms"]
    if not isinstance(names, list):
        raise ValueError("bandit state: `config.arms` must be a list of strategy names")
    known = {strategy.value for strategy in Strategy}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"bandit state: unknown arms {unknown!r}; known are {sorted(known)}")
    numbers = {}
    for key in ("alpha", "epsilon", "ridge"):
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"bandit state: `config.{key}` must be a number")
        numbers[key] = float(value)
    try:
        return BanditConfig(arms=tuple(Strategy(name) for name in names), **numbers)
    except ConfigError as exc:
        raise ValueError(f"bandit state: {exc}") from exc


def _expect_keys(raw: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    if set(raw) != set(keys):
        raise ValueError(f"{where}: expected the keys {list(keys)}, got {sorted(map(str, raw))}")


def _matrix(raw: object, shape: tuple[int, ...], where: str) -> FloatArray:
    try:
        array = np.array(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected numbers of shape {shape}") from None
    if array.shape != shape:
        raise ValueError(f"{where}: expected shape {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{where}: has a non-finite number")
    return array
