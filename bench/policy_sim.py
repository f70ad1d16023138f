"""Policy benchmark: random, rules-only and rules+RL against simulated users.

Every policy meets the same seeded sequence of users: the personas take turns
in rounds shuffled by `--seed` (each once per round), and episode ``i`` gives every policy a
user generator seeded ``[seed, i]``, so the personas, their starting moods and
conversation lengths match and the policies can be compared episode by episode.
The users are `agent.training.policy.simulation.PERSONAS` (hidden emotional dynamics and
strategy preferences); rewards are `policies.reward.reward` per reply, summed
per episode; valence gain is the user's final minus initial hidden valence.

Policies: ``random`` (a uniformly random strategy); ``rules-only``, the shipped
`policies.stack.policy_stack()`; ``rules+RL (gaps)``, a bandit below the rules
that only decides where they abstain; ``rules+RL``, the shipped stack with the bandit: a warm
bandit decides every reply, the rules keep their handoffs. Both bandits start
cold, with the shipped `BanditConfig` and `min_updates`, and learn online from
every reply's reward, whoever served it.

Prints mean reward and valence gain per policy and per persona with 95%
confidence intervals, rules+RL against rules-only paired by episode (a
standard-error interval for the difference, a bootstrap one for the ratio), and
after how many episodes of each persona the rules+RL moving average first
reaches 95% of its final level. Writes the learning curves to `--out`.

    .venv/bin/python bench/policy_sim.py
    .venv/bin/python bench/policy_sim.py --episodes 5000 --seed 11 --out /tmp/curves.png
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _stats import machine_summary
from tqdm import tqdm

from agent.training.policy.simulation import (
    PERSONAS,
    EpisodeResult,
    Learner,
    RandomPolicy,
    run_episode,
)
from policies.bandit import LinearBandit
from policies.bandit_policy import BanditPolicy
from policies.base import Policy
from policies.features import FloatArray
from policies.stack import policy_stack

_DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "policy_learning.png"
_Z95 = 1.96
_BOOTSTRAP = 2000
# Persona episodes in the moving average that convergence is judged on, and the
# share of a persona's last episodes that makes its final level.
_PERSONA_WINDOW = 50
_FINAL_SHARE = 0.25
_RULES, _LEARNED = "rules-only", "rules+RL"


@dataclass(frozen=True, slots=True)
class _Run:
    name: str
    episodes: list[EpisodeResult]
    seconds: float

    def rewards(self, persona: str | None = None) -> FloatArray:
        return np.array([e.total_reward for e in self._of(persona)])

    def gains(self, persona: str | None = None) -> FloatArray:
        return np.array([e.valence_gain for e in self._of(persona)])

    def _of(self, persona: str | None) -> list[EpisodeResult]:
        return [e for e in self.episodes if persona is None or e.persona == persona]


def _policies(seed: int) -> dict[str, Callable[[], tuple[Policy, Learner | None]]]:
    def random() -> tuple[Policy, Learner | None]:
        return RandomPolicy(np.random.default_rng([seed, 1])), None

    def rules() -> tuple[Policy, Learner | None]:
        return policy_stack(), None

    def learned(overrides: bool) -> Callable[[], tuple[Policy, Learner | None]]:
        def build() -> tuple[Policy, Learner | None]:
            bandit = LinearBandit()
            policy = BanditPolicy(bandit, rng=np.random.default_rng([seed, 2, int(overrides)]))
            return policy_stack(bandit=policy, bandit_overrides_rules=overrides), bandit.update

        return build

    return {
        "random": random,
        _RULES: rules,
        "rules+RL (gaps)": learned(False),
        _LEARNED: learned(True),
    }


def _simulate(
    name: str, build: Callable[[], tuple[Policy, Learner | None]], picks: Sequence[int], seed: int
) -> _Run:
    policy, learner = build()
    episodes = []
    started = time.perf_counter()
    for i, pick in enumerate(tqdm(picks, desc=f"{name:>16}", unit="ep", file=sys.stderr)):
        rng = np.random.default_rng([seed, i])
        episodes.append(run_episode(policy, PERSONAS[pick], rng, learner=learner))
    return _Run(name, episodes, time.perf_counter() - started)


def _persona_order(episodes: int, seed: int) -> list[int]:
    """Which persona each episode meets: every persona once per round, in a shuffled order."""
    rng = np.random.default_rng([seed, 0])
    rounds = -(-episodes // len(PERSONAS))
    order = np.concatenate([rng.permutation(len(PERSONAS)) for _ in range(rounds)])
    return [int(i) for i in order[:episodes]]


def _ci(samples: FloatArray) -> float:
    """Half-width of the 95% normal interval of the mean."""
    if len(samples) < 2:
        return float("nan")
    return _Z95 * float(samples.std(ddof=1)) / math.sqrt(len(samples))


def _ratio_ci(learned: FloatArray, base: FloatArray, seed: int) -> tuple[float, float]:
    """95% paired-bootstrap interval of mean(learned) / mean(base)."""
    rng = np.random.default_rng([seed, 3])
    idx = rng.integers(len(base), size=(_BOOTSTRAP, len(base)))
    ratios = learned[idx].mean(axis=1) / base[idx].mean(axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def _moving_average(values: FloatArray, window: int) -> FloatArray:
    """Trailing mean over the last `window` values (fewer at the start)."""
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    result: FloatArray = (sums[ends] - sums[starts]) / (ends - starts)
    return result


def _final_level(values: FloatArray) -> float:
    """The mean of the last quarter of `values`."""
    return float(values[-max(1, int(len(values) * _FINAL_SHARE)) :].mean())


def _converged_at(rewards: FloatArray) -> tuple[int | None, float]:
    """Persona episodes until the moving average first reaches 95% of the final level.

    The final level is `_final_level`; "95%" allows 5% of its size below it,
    whatever its sign. None if it never does (or there are too few episodes).
    """
    final = _final_level(rewards)
    if len(rewards) < _PERSONA_WINDOW:
        return None, final
    average = _moving_average(rewards, _PERSONA_WINDOW)[_PERSONA_WINDOW - 1 :]
    reached = np.flatnonzero(average >= final - 0.05 * abs(final))
    return (int(reached[0]) + _PERSONA_WINDOW if reached.size else None), final


def _print_overall(runs: Sequence[_Run]) -> None:
    print("\nAll personas: mean per episode ± 95% CI")
    print(
        f"  {'policy':<17}{'reward/ep':>17}{'valence gain':>17}{'reward/turn':>13}"
        f"{'handoffs':>10}{'turns/ep':>10}{'time s':>8}"
    )
    for run in runs:
        rewards, gains = run.rewards(), run.gains()
        turns = sum(e.turns for e in run.episodes)
        handoffs = np.mean([e.handed_off for e in run.episodes])
        print(
            f"  {run.name:<17}{rewards.mean():>9.3f} ± {_ci(rewards):.3f}"
            f"{gains.mean():>+9.3f} ± {_ci(gains):.3f}{rewards.sum() / turns:>13.3f}"
            f"{handoffs:>10.1%}{turns / len(run.episodes):>10.2f}{run.seconds:>8.1f}"
        )


def _print_paired(base: _Run, learned: _Run, seed: int) -> None:
    n = len(base.episodes)
    print(
        f"\n{learned.name} vs {base.name}, paired by episode (difference ± 95% CI, ratio [95% CI])"
    )
    for label, part in (
        (f"all {n:,} episodes", slice(0, n)),
        (f"last {n // 2:,}", slice(n // 2, n)),
    ):
        r_base, r_learned = base.rewards()[part], learned.rewards()[part]
        g_diff = learned.gains()[part] - base.gains()[part]
        low, high = _ratio_ci(r_learned, r_base, seed)
        print(
            f"  {label:<18} reward/ep {np.mean(r_learned - r_base):+.3f} ± "
            f"{_ci(r_learned - r_base):.3f}, ratio {r_learned.mean() / r_base.mean():.2f} "
            f"[{low:.2f}, {high:.2f}]; valence gain {g_diff.mean():+.3f} ± {_ci(g_diff):.3f}"
        )


def _print_personas(runs: Sequence[_Run]) -> None:
    print("\nPer persona: reward/ep (valence gain), all episodes")
    print(f"  {'persona':<21}{'n':>5}" + "".join(f"{run.name:>18}" for run in runs))
    for persona in PERSONAS:
        n = len(runs[0].rewards(persona.name))
        cells = "".join(
            f"{run.rewards(persona.name).mean():>10.3f} ({run.gains(persona.name).mean():+.2f})"
            for run in runs
        )
        print(f"  {persona.name:<21}{n:>5}{cells}")


def _print_learning(base: _Run, learned: _Run) -> None:
    print(
        f"\n{learned.name} against {base.name} per persona: the hidden best strategy; what each"
        f"\nplayed most in the second half; the paired difference in reward/ep (± 95% CI) and"
        f"\nvalence gain; convergence: {learned.name}'s episodes of that persona until its"
        f"\n{_PERSONA_WINDOW}-episode moving average first reaches 95% of its final level (the mean"
        f"\nof the last quarter of them; {base.name}'s over the same episodes beside it)"
    )
    print(
        f"  {'persona':<21}{'best':>12}{'rules play':>13}{'RL plays':>13}"
        f"{'Δ reward/ep':>17}{'Δ gain':>8}{'converged':>11}{'final':>8}{'rules':>8}"
    )
    for persona in PERSONAS:
        diff = learned.rewards(persona.name) - base.rewards(persona.name)
        gain = learned.gains(persona.name) - base.gains(persona.name)
        at, final = _converged_at(learned.rewards(persona.name))
        print(
            f"  {persona.name:<21}{persona.best().value:>12}"
            f"{_most_played(base, persona.name):>13}{_most_played(learned, persona.name):>13}"
            f"{diff.mean():>+10.3f} ± {_ci(diff):.3f}{gain.mean():>+8.2f}"
            f"{_episodes_or_why(at, len(diff)):>11}{final:>8.3f}"
            f"{_final_level(base.rewards(persona.name)):>8.3f}"
        )


def _episodes_or_why(at: int | None, episodes: int) -> str:
    if at is not None:
        return str(at)
    return "too few" if episodes < _PERSONA_WINDOW else "never"


def _most_played(run: _Run, persona: str) -> str:
    half = len(run.episodes) // 2
    played = Counter(s for e in run.episodes[half:] if e.persona == persona for s in e.strategies)
    return played.most_common(1)[0][0].value if played else "-"


def _plot(runs: Sequence[_Run], window: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    # Full windows only, so the first few episodes do not dominate the scale.
    for run in runs:
        x = np.arange(window, len(run.episodes) + 1)
        left.plot(x, _moving_average(run.rewards(), window)[window - 1 :], label=run.name)
    left.set(
        title=f"Reward per episode, moving average of {window}",
        xlabel="episode",
        ylabel="reward / episode",
    )
    left.legend()
    base, learned = (next(r for r in runs if r.name == name) for name in (_RULES, _LEARNED))
    for persona in PERSONAS:
        diff = learned.rewards(persona.name) - base.rewards(persona.name)
        x = np.arange(_PERSONA_WINDOW, len(diff) + 1)
        average = _moving_average(diff, _PERSONA_WINDOW)[_PERSONA_WINDOW - 1 :]
        right.plot(x, average, label=persona.name, linewidth=1.0)
    right.axhline(0.0, color="grey", linewidth=0.8)
    right.set(
        title=f"{_LEARNED} minus {_RULES} per persona, moving average of {_PERSONA_WINDOW}",
        xlabel="episode of that persona",
        ylabel="Δ reward / episode",
    )
    right.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=5000, help="per policy (5000)")
    parser.add_argument("--seed", type=int, default=7, help="seeds personas, users, bandits (7)")
    parser.add_argument("--window", type=int, default=200, help="moving average, episodes (200)")
    parser.add_argument("--out", type=Path, default=_DEFAULT_OUT, help="learning-curve PNG")
    args = parser.parse_args(argv)
    if not 1 <= args.window <= args.episodes:
        parser.error("--window must be between 1 and --episodes")
    if args.episodes < 2 * len(PERSONAS):
        parser.error(f"--episodes must be at least {2 * len(PERSONAS)}, two per persona")
    picks = _persona_order(args.episodes, args.seed)
    print(
        f"policy_sim: {args.episodes:,} episodes per policy, seed {args.seed}, "
        f"{len(PERSONAS)} personas in shuffled rounds\nmachine: {machine_summary()}"
    )
    runs = [
        _simulate(name, build, picks, args.seed) for name, build in _policies(args.seed).items()
    ]
    base, learned = (next(r for r in runs if r.name == name) for name in (_RULES, _LEARNED))
    _print_overall(runs)
    _print_paired(base, learned, args.seed)
    _print_personas(runs)
    _print_learning(base, learned)
    _plot(runs, args.window, args.out)
    print(f"\nlearning curves: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
