"""The policy stack Heartline runs: which policies, in which order of priority."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from policies.bandit import BanditPolicy, LinearBandit
from policies.ensemble import FallbackPolicy, Member, PolicyEnsemble
from policies.rules import RulePolicy
from policies.safety import SafetyPolicy

__all__ = ["PRIORITIES", "policy_stack"]

# Higher wins. A crisis overrides everything; rules encode what the deployment
# insists on; the learned bandit chooses where no rule holds (once it has
# learned enough to speak); the fallback speaks when nothing else does.
PRIORITIES = {"safety": 100, "rules": 50, "bandit": 20, "fallback": 0}


def policy_stack(
    *,
    rules_file: Path | None = None,
    bandit: LinearBandit | None = None,
    rng: np.random.Generator | None = None,
) -> PolicyEnsemble:
    """The ensemble of the shipped policies; `rules_file` replaces the shipped rules.

    With a `bandit`, the learning policy joins, drawing from `rng` (a fresh,
    unseeded generator by default).
    """
    rules = RulePolicy() if rules_file is None else RulePolicy.from_file(rules_file)
    members = [
        Member(SafetyPolicy(), PRIORITIES["safety"]),
        Member(rules, PRIORITIES["rules"]),
        Member(FallbackPolicy(), PRIORITIES["fallback"]),
    ]
    if bandit is not None:
        learned = BanditPolicy(bandit, rng=rng or np.random.default_rng())
        members.insert(2, Member(learned, PRIORITIES["bandit"]))
    return PolicyEnsemble(members)
