"""The policy stack Heartline runs: which policies, in which order of priority."""

from __future__ import annotations

from pathlib import Path

from policies.ensemble import FallbackPolicy, Member, PolicyEnsemble
from policies.rules import RulePolicy

__all__ = ["PRIORITIES", "policy_stack"]

# Higher wins. Rules encode what the deployment insists on; the fallback only
# speaks when nothing else does.
PRIORITIES = {"rules": 50, "fallback": 0}


def policy_stack(*, rules_file: Path | None = None) -> PolicyEnsemble:
    """The ensemble of the shipped policies; `rules_file` replaces the shipped rules."""
    rules = RulePolicy() if rules_file is None else RulePolicy.from_file(rules_file)
    return PolicyEnsemble(
        [
            Member(rules, PRIORITIES["rules"]),
            Member(FallbackPolicy(), PRIORITIES["fallback"]),
        ]
    )
