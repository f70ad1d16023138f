"""Policies decide each turn's action and response strategy; all are pure."""

from policies.base import Policy
from policies.rules import DEFAULT_RULES, Rule, RulePolicy

__all__ = ["DEFAULT_RULES", "Policy", "Rule", "RulePolicy"]
