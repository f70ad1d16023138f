"""Conversation flows: transitions on emotion and content, prescribing states, file errors."""

from __future__ import annotations

import pytest

from agent.emotion import LexiconRecognizer
from agent.errors import ConfigError
from agent.values import Action, Exchange, HistorySummary, TurnContext
from policies.flows import FlowPolicy, load_flow, parse_flow

_reader = LexiconRecognizer()
ANGRY = "I am furious, this is unacceptable!"


def _context(
    text: str, *, earlier: tuple[str, ...] = (), flow_state: str | None = None
) -> TurnContext:
    return TurnContext(
        text=text,
        emotion=_reader.read(text),
        history=HistorySummary.first_time(),
        conversation=tuple(Exchange(text=t, reply="", emotion=_reader.read(t)) for t in earlier),
        flow_state=flow_state,
    )


def _walk(texts: list[str]) -> list[str]:
    flow, state = load_flow(), None
    said: list[str] = []
    states: list[str] = []
    for text in texts:
        state = flow.advance(state, _context(text, earlier=tuple(said)))
        said.append(text)
        states.append(state)
    return states


def test_the_customer_service_flow_runs_from_greeting_to_close() -> None:
    assert _walk(
        [
            "Hi there",
            "My order 12345 has not arrived",
            "Thanks, that worked",
            "Yes, that's all, bye",
        ]
    ) == ["understand", "resolve", "confirm", "close"]


def test_not_fixed_goes_back_and_lasting_anger_escalates() -> None:
    assert _walk(["Hello", "my parcel is late", "No, it still doesn't work"]) == [
        "understand", "resolve", "understand",
    ]  # fmt: skip
    assert _walk(["Hello", ANGRY, ANGRY, ANGRY])[-1] == "escalate"
    assert _walk(["我要转人工"]) == ["escalate"]


def test_prescribing_states_decide_and_the_others_abstain() -> None:
    policy = FlowPolicy(load_flow())
    handoff = policy.decide(_context("anything", flow_state="escalate"))
    assert handoff is not None
    assert handoff.action is Action.HANDOFF
    assert handoff.policy == "flow:customer_service:escalate"
    end = policy.decide(_context("bye", flow_state="close"))
    assert end is not None
    assert end.action is Action.END
    assert policy.decide(_context("x", flow_state="resolve")) is None
    assert policy.decide(_context("x")) is None


def test_an_unknown_state_restarts_the_flow() -> None:
    assert load_flow().advance("vanished", _context("hello")) == "understand"


_GOOD = """\
version: 1
flow: tiny
start: a
states:
  - name: a
    transitions:
      - {to: b, when: {always: true}}
  - name: b
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_GOOD.replace("start: a", "start: z"), "start state 'z' is not one of the states"),
        (_GOOD.replace("to: b", "to: c"), "transition to unknown state 'c'"),
        (_GOOD.replace("always: true", "alway: true"), "unknown condition 'alway'"),
        (
            _GOOD.replace("  - name: b\n", "  - name: b\n    then: {action: end}\n"),
            "'then' and 'reason' go together",
        ),
        (_GOOD.replace("flow: tiny", "flow: Tiny!"), "the flow's name is lower-case"),
    ],
)
def test_flow_file_mistakes_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^flow\.yaml:\d+: ") as caught:
        parse_flow(text, source="flow.yaml")
    assert message in str(caught.value)
    assert parse_flow(_GOOD).advance(None, _context("x")) == "b"
