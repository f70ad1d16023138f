"""Conversation flows: YAML state machines whose transitions fire on emotion and content.

A flow has states; each state lists transitions (``to`` a state ``when`` its
conditions hold, the conditions of rule files), tried in order at every
turn. The state after the turn's transition is the session's flow state: the
pipeline stores it with the turn, so the flow resumes on whichever worker
takes the session next, and passes it to the policies in
`TurnContext.flow_state` (the bandit reads it as a feature).

A state may also prescribe a decision (``then`` and ``reason``, as a rule
does): `FlowPolicy` makes it while the conversation is in that state, e.g. a
handoff in ``escalate``; in the other states it abstains and the rules and
the bandit decide. The shipped customer-service flow is `DEFAULT_FLOW_FILE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from yaml.nodes import Node, SequenceNode

from agent.errors import ConfigError
from agent.values import Decision, TurnContext
from policies.conditions import Condition
from policies.rule_files import Outcome, YamlReader, compose, render_reason

__all__ = ["DEFAULT_FLOW_FILE", "Flow", "FlowPolicy", "FlowState", "Transition", "load_flow"]

DEFAULT_FLOW_FILE = Path(__file__).parent / "flows" / "customer_service.yaml"

_STATE_KEYS = ("name", "transitions", "then", "reason")


@dataclass(frozen=True, slots=True)
class Transition:
    to: str
    when: Condition


@dataclass(frozen=True, slots=True)
class FlowState:
    name: str
    transitions: tuple[Transition, ...]
    outcome: Outcome | None


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    start: str
    states: dict[str, FlowState]

    def advance(self, state: str | None, context: TurnContext) -> str:
        """The state after this turn: the first transition out of `state` that holds.

        A state the flow does not know (a flow file changed under a running
        conversation) restarts the flow.
        """
        current = self.states.get(state or self.start) or self.states[self.start]
        for transition in current.transitions:
            if transition.when.holds(context):
                return transition.to
        return current.name


class FlowPolicy:
    """Decides in the flow states that prescribe a decision; abstains in the others."""

    name = "flow"

    def __init__(self, flow: Flow) -> None:
        self._flow = flow

    @property
    def flow(self) -> Flow:
        return self._flow

    def decide(self, context: TurnContext) -> Decision | None:
        state = self._flow.states.get(context.flow_state or "")
        if state is None or state.outcome is None:
            return None
        outcome = state.outcome
        return Decision(
            action=outcome.action,
            strategy=outcome.strategy,
            tone=outcome.tone,
            confidence=outcome.confidence,
            policy=f"{self.name}:{self._flow.name}:{state.name}",
            reasons=(render_reason(outcome.reason_template, context),),
        )


def load_flow(path: Path = DEFAULT_FLOW_FILE) -> Flow:
    """A flow file; `ConfigError` naming the file, the line and the fix if it is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read flow file {path}: {exc}") from exc
    return parse_flow(text, source=str(path))


def parse_flow(text: str, *, source: str = "<flow>") -> Flow:
    reader = YamlReader(source)
    root = compose(text, source)
    if root is None:
        raise reader.fail(None, "the file is empty; it needs version, flow, start and states")
    top = reader.mapping(root, "the file")
    reader.only(top, ("version", "flow", "start", "states"), "the file")
    for key in ("version", "flow", "start", "states"):
        if key not in top:
            raise reader.fail(root, f"the file needs '{key}:'")
    if reader.value(top["version"][1]) != 1:
        raise reader.fail(top["version"][1], "the file needs 'version: 1'")
    name = reader.name(top["flow"][1], "the flow")
    states_node = top["states"][1]
    if not isinstance(states_node, SequenceNode) or not states_node.value:
        raise reader.fail(states_node, "'states' must be a non-empty list ('- name: ...')")
    raw = [_state(reader, node) for node in states_node.value]
    names = {state.name: node for state, node in zip(raw, states_node.value, strict=True)}
    if len(names) != len(raw):
        raise reader.fail(states_node, "state names must be unique")
    start = reader.name(top["start"][1], "the start state")
    if start not in names:
        raise reader.fail(top["start"][1], f"start state {start!r} is not one of the states")
    for state, node in zip(raw, states_node.value, strict=True):
        for transition in state.transitions:
            if transition.to not in names:
                raise reader.fail(
                    node,
                    f"state {state.name!r}: transition to unknown state {transition.to!r}; "
                    f"states are: {', '.join(names)}",
                )
    return Flow(name=name, start=start, states={state.name: state for state in raw})


def _state(reader: YamlReader, node: Node) -> FlowState:
    entries = reader.mapping(node, "a state")
    reader.only(entries, _STATE_KEYS, "a state")
    if "name" not in entries:
        raise reader.fail(node, "a state needs 'name:'")
    name = reader.name(entries["name"][1], "a state")
    what = f"state {name!r}"
    if ("then" in entries) != ("reason" in entries):
        raise reader.fail(node, f"{what}: 'then' and 'reason' go together")
    outcome = (
        reader.outcome(entries["then"][1], entries["reason"][1], what)
        if "then" in entries
        else None
    )
    transitions: list[Transition] = []
    if "transitions" in entries:
        listed = entries["transitions"][1]
        if not isinstance(listed, SequenceNode):
            raise reader.fail(listed, f"{what}: transitions must be a list ('- to: ...')")
        for item in listed.value:
            fields = reader.mapping(item, f"{what}: a transition")
            reader.only(fields, ("to", "when"), f"{what}: a transition")
            if set(fields) != {"to", "when"}:
                raise reader.fail(item, f"{what}: a transition needs 'to:' and 'when:'")
            transitions.append(
                Transition(
                    to=reader.name(fields["to"][1], f"{what}: a transition's target"),
                    when=reader.condition(fields["when"][1], f"{what}: transition"),
                )
            )
    return FlowState(name=name, transitions=tuple(transitions), outcome=outcome)
