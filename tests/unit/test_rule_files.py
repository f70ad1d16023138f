"""YAML rule files: every condition works, and every mistake names its line and the fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agent.emotion import LexiconRecognizer
from agent.errors import ConfigError
from agent.values import (
    Action,
    ConversationMood,
    Exchange,
    HistorySummary,
    SessionMood,
    Strategy,
    Trajectory,
    Trend,
    TurnContext,
)
from policies import DEFAULT_RULES_FILE, RulePolicy, load_rules, parse_rules

_reader = LexiconRecognizer()


def _rules(body: str) -> str:
    return "version: 1\nrules:\n" + textwrap.indent(textwrap.dedent(body), "  ")


def _one(when: str, reason: str = "because") -> RulePolicy:
    return RulePolicy(
        parse_rules(
            _rules(
                f"""\
                - name: only
                  when:
                {textwrap.indent(textwrap.dedent(when), "    ")}
                  then: {{action: reply, strategy: reassure, tone: calm, confidence: 0.5}}
                  reason: '{reason}'
                """
            )
        )
    )


def _context(
    text: str,
    *,
    earlier: tuple[str, ...] = (),
    history: HistorySummary | None = None,
    trajectory: Trajectory = Trajectory.STEADY,
    now: float = 0.0,
) -> TurnContext:
    return TurnContext(
        text=text,
        emotion=_reader.read(text),
        history=history or HistorySummary.first_time(),
        conversation=tuple(Exchange(text=t, reply="", emotion=_reader.read(t)) for t in earlier),
        mood=ConversationMood(trajectory=trajectory),
        now=now,
    )


ANGRY = "I am furious, this is unacceptable!"


def test_the_shipped_rules_load_and_abstain_when_no_rule_holds() -> None:
    rules = load_rules(DEFAULT_RULES_FILE)
    assert rules[0].name == "asks_for_human"
    assert RulePolicy().decide(_context("hello")) is None
    assert _one("always: true").decide(_context("hello")) is not None


def test_emotion_over_consecutive_turns() -> None:
    policy = _one("emotion: {labels: [anger], at_least: 0.5, turns: 2}", "anger {score}")
    assert policy.decide(_context(ANGRY)) is None
    decision = policy.decide(_context(ANGRY, earlier=(ANGRY,)))
    assert decision is not None
    assert decision.reasons[0].startswith("anger 0.")
    assert policy.decide(_context(ANGRY, earlier=(ANGRY, "What a lovely day"))) is None


def test_emotion_over_another_group() -> None:
    policy = _one("emotion: {labels: [sadness], at_least: 0.1, over: [joy]}")
    assert policy.decide(_context("I feel so sad and lonely")) is not None
    assert policy.decide(_context("Thank you, this is wonderful!")) is None


@pytest.mark.parametrize(
    ("when", "holds", "fails"),
    [
        ("valence: {below: -0.2}", _context(ANGRY), _context("Thank you, wonderful!")),
        ("matches: 'refund|退款'", _context("我要退款"), _context("hello")),
        (
            "trajectory: [escalating, volatile]",
            _context("x", trajectory=Trajectory.ESCALATING),
            _context("x"),
        ),
        (
            "trend: deteriorating",
            _context(
                "x",
                history=HistorySummary(
                    returning=True, sessions=1, turns=9, trend=Trend.DETERIORATING
                ),
            ),
            _context("x"),
        ),
        (
            "returning: true",
            _context("x", history=HistorySummary(returning=True, sessions=1, turns=1)),
            _context("x"),
        ),
        ("turn: {at_least: 3}", _context("x", earlier=("a", "b")), _context("x", earlier=("a",))),
        ("hour: {from: 22, to: 6}", _context("x", now=23 * 3600.0), _context("x", now=12 * 3600.0)),
        ("not: {matches: 'refund'}", _context("hello"), _context("a refund please")),
        (
            "any: [{matches: 'refund'}, {matches: 'return'}]",
            _context("a return"),
            _context("hello"),
        ),
    ],
)
def test_each_condition(when: str, holds: TurnContext, fails: TurnContext) -> None:
    policy = _one(when)
    assert policy.decide(holds) is not None
    assert policy.decide(fails) is None


def test_mood_streak_and_its_reason_field() -> None:
    sessions = tuple(
        SessionMood(turns=3, mood="anger", mean_valence=-0.5, ended_at=float(i)) for i in (3, 2)
    )
    history = HistorySummary(returning=True, sessions=2, turns=6, past_sessions=sessions)
    policy = _one("mood_streak: {mood: anger, at_least: 2}", "frustrated {streak} times")
    decision = policy.decide(_context("hi", history=history))
    assert decision is not None
    assert decision.reasons[0] == "frustrated 2 times"
    assert decision.action is Action.REPLY
    assert decision.strategy is Strategy.REASSURE


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", None, "the file is empty"),
        ("version: 2\nrules: []", 1, "needs 'version: 1'"),
        ("version: 1\nrules: [", 2, "not valid YAML"),
        ("version: 1\nrulez: []", 2, "unknown key 'rulez' (did you mean 'rules'?)"),
        (
            _rules(
                """\
                - name: angry
                  when:
                    emotoin: {labels: [anger], at_least: 0.5}
                  then: {action: reply, strategy: de-escalate, tone: calm, confidence: 0.8}
                  reason: x
                """
            ),
            5,
            "rule 'angry': unknown condition 'emotoin' (did you mean 'emotion'?)",
        ),
        (
            _rules(
                """\
                - name: angry
                  when: {emotion: {labels: [angry], at_least: 0.5}}
                  then: {action: reply, strategy: de-escalate, tone: calm, confidence: 0.8}
                  reason: x
                """
            ),
            4,
            "'angry' is not an emotion",
        ),
        (
            _rules(
                """\
                - name: calm
                  when: {always: true}
                  then: {action: reply, strategy: soothe, tone: calm, confidence: 0.8}
                  reason: x
                """
            ),
            5,
            "strategy must be one of empathize, apologize",
        ),
        (
            _rules(
                """\
                - name: calm
                  when: {always: true}
                  then: {action: reply, strategy: inform, tone: calm, confidence: 1.5}
                  reason: x
                """
            ),
            5,
            "confidence must be a number from 0 to 1",
        ),
        (
            _rules(
                """\
                - name: calm
                  when: {always: true}
                  then: {action: reply, strategy: inform, tone: calm, confidence: 0.5}
                  reason: 'anger {angr}'
                """
            ),
            6,
            "reason field {angr} is unknown",
        ),
        (
            _rules(
                """\
                - name: calm
                  when: {matches: '(unclosed'}
                  then: {action: reply, strategy: inform, tone: calm, confidence: 0.5}
                  reason: x
                - name: calm
                  when: {always: true}
                  then: {action: reply, strategy: inform, tone: calm, confidence: 0.5}
                  reason: x
                """
            ),
            4,
            "not a valid regular expression",
        ),
        (
            _rules(
                """\
                - name: calm
                  when: {always: true}
                  then: {action: reply, strategy: inform, tone: calm, confidence: 0.5}
                  reason: x
                - name: calm
                  when: {always: true}
                  then: {action: reply, strategy: inform, tone: calm, confidence: 0.5}
                  reason: x
                """
            ),
            7,
            "rule name 'calm' is already used on line 3",
        ),
        (
            _rules(
                """\
                - name: calm
                  when: {always: true}
                  reason: x
                """
            ),
            3,
            "a rule needs 'then:'",
        ),
    ],
)
def test_mistakes_name_the_line_and_the_fix(text: str, line: int | None, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, source="mine.yaml")
    where = "mine.yaml" if line is None else f"mine.yaml:{line}:"
    assert str(caught.value).startswith(where), str(caught.value)
    assert message in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read rule file"):
        RulePolicy.from_file(tmp_path / "nope.yaml")
