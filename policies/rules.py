"""The rule policy: ordered, declarative rules over the emotion reading and history.

Rules are data: a YAML file (`policies.rule_files`), the shipped one by
default. The first rule whose conditions hold decides; each decision carries
a human-readable reason that names the numbers behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agent.values import Decision, TurnContext
from policies.rule_files import DEFAULT_RULES_FILE, FileRule, load_rules

__all__ = ["RulePolicy"]


class RulePolicy:
    """First matching rule wins; abstains when no rule matches (add an `always` rule to never)."""

    name = "rules"

    def __init__(self, rules: Sequence[FileRule] | None = None) -> None:
        self._rules = tuple(rules) if rules is not None else load_rules(DEFAULT_RULES_FILE)

    @classmethod
    def from_file(cls, path: Path) -> RulePolicy:
        """The rules of a YAML file; `ConfigError` naming file and line if it is wrong."""
        return cls(load_rules(path))

    @property
    def rules(self) -> tuple[FileRule, ...]:
        return self._rules

    def decide(self, context: TurnContext) -> Decision | None:
        for rule in self._rules:
            if rule.matches(context):
                return Decision(
                    action=rule.action,
                    strategy=rule.strategy,
                    tone=rule.tone,
                    confidence=rule.confidence,
                    policy=f"{self.name}:{rule.name}",
                    reasons=(rule.reason(context),),
                )
        return None
