"""The policy stack Heartline runs: which policies, in which order of priority.

Higher priority wins (`policies.ensemble`):

- 100 ``safety``: a crisis overrides everything;
- 80 ``flow``: a flow state that prescribes a decision (escalate, close);
- 70 ``escalations``: the rules' decisions that leave the conversation (handoff,
  end) and nothing else, so the learned policy never overrides a handoff;
- 60 ``bandit``: the learned policy, silent until it has learned from
  `min_updates` turns, then deciding every reply;
- 50 ``rules``: the rules, which decide replies while the bandit is cold;
- 0 ``fallback``: when nothing else speaks.

Why the bandit sits above the rules' replies: below them it could only fill
their gaps and never beat a rule that fires with a worse strategy; in the
user simulator (`bench/policy_sim.py`) overriding earns 1.7x the rules' reward
per episode, filling gaps 1.3x. ``bandit_overrides_rules=False`` builds the
conservative stack (the bandit at 20, below the rules). The bandit learns from
every rewarded turn whoever served it (`policies.learning`), so the rules'
turns warm it up.
"""

from __future__ import annotations

from pathlib import Path

from agent.values import Action, Decision, TurnContext
from policies.bandit_policy import BanditPolicy
from policies.base import Policy
from policies.ensemble import FallbackPolicy, Member, PolicyEnsemble
from policies.flows import Flow, FlowPolicy
from policies.rules import RulePolicy
from policies.safety import SafetyPolicy

__all__ = ["PRIORITIES", "Escalations", "policy_stack"]

PRIORITIES = {
    "safety": 100,
    "flow": 80,
    "escalations": 70,
    "bandit": 60,
    "rules": 50,
    "bandit_below_rules": 20,
    "fallback": 0,
}


class Escalations:
    """Another policy's decisions that leave the conversation (handoff, end); abstains otherwise.

    Placed above a learned policy, it keeps that policy from ever overriding a handoff.
    """

    def __init__(self, policy: Policy, *, name: str = "escalations") -> None:
        self._policy = policy
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def decide(self, context: TurnContext) -> Decision | None:
        decision = self._policy.decide(context)
        if decision is None or decision.action is Action.REPLY:
            return None
        return decision


def policy_stack(
    *,
    rules: RulePolicy | None = None,
    rules_file: Path | None = None,
    flow: Flow | None = None,
    bandit: BanditPolicy | None = None,
    bandit_overrides_rules: bool = True,
) -> PolicyEnsemble:
    """The ensemble of the shipped policies.

    `rules` (or the rules of `rules_file`, else the shipped ones) decide; with
    a `flow`, its prescribing states decide (the pipeline advances the flow
    and puts its state in the context); with a `bandit`, the learned policy
    joins, above the rules' replies unless `bandit_overrides_rules` is False.
    """
    if rules is None:
        rules = RulePolicy() if rules_file is None else RulePolicy.from_file(rules_file)
    members = [Member(SafetyPolicy(), PRIORITIES["safety"])]
    if flow is not None:
        members.append(Member(FlowPolicy(flow), PRIORITIES["flow"]))
    if bandit is not None and bandit_overrides_rules:
        members.append(Member(Escalations(rules), PRIORITIES["escalations"]))
        members.append(Member(bandit, PRIORITIES["bandit"]))
    members.append(Member(rules, PRIORITIES["rules"]))
    if bandit is not None and not bandit_overrides_rules:
        members.append(Member(bandit, PRIORITIES["bandit_below_rules"]))
    members.append(Member(FallbackPolicy(), PRIORITIES["fallback"]))
    return PolicyEnsemble(members)
