"""Policies decide each turn's action and response strategy; all are pure."""

from policies.base import Policy
from policies.ensemble import FallbackPolicy, Member, PolicyEnsemble
from policies.rule_files import DEFAULT_RULES_FILE, FileRule, load_rules, parse_rules
from policies.rules import RulePolicy

__all__ = [
    "DEFAULT_RULES_FILE",
    "FallbackPolicy",
    "FileRule",
    "Member",
    "Policy",
    "PolicyEnsemble",
    "RulePolicy",
    "load_rules",
    "parse_rules",
]
