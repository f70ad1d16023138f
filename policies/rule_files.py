"""Rule files: the rule policy's rules as YAML, checked on load with errors that say where.

A file holds ``version: 1`` and a list of ``rules``; each rule has a ``name``,
a ``when`` (conditions that must all hold), a ``then`` (action, strategy,
tone, confidence) and a ``reason``. The first rule whose conditions hold
decides. The shipped rules are `DEFAULT_RULES_FILE`; docs/policies.md
describes every condition.

Every mistake is a `ConfigError` naming the file, the line and the fix, e.g.
``rules.yaml:12: rule 'angry': unknown condition 'emotoin' (did you mean
'emotion'?); conditions are: ...``. The YAML is walked node by node, not
loaded into plain dicts first, so each message can point at the line.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, SequenceNode

from agent.errors import ConfigError
from agent.values import Action, Strategy, Tone, Trajectory, Trend, TurnContext
from policies.conditions import (
    AllOf,
    AnyOf,
    Condition,
    EmotionAtLeast,
    HourBetween,
    Matches,
    MoodStreak,
    Not,
    Numeric,
    Returning,
    TrajectoryIs,
    TrendIs,
    TurnCount,
    expand_labels,
)

__all__ = [
    "DEFAULT_RULES_FILE",
    "FileRule",
    "Outcome",
    "YamlReader",
    "compose",
    "load_rules",
    "parse_rules",
    "render_reason",
]

DEFAULT_RULES_FILE = Path(__file__).parent / "default_rules.yaml"
FORMAT_VERSION = 1

_T = TypeVar("_T")
_E = TypeVar("_E", Action, Strategy, Tone, Trajectory, Trend)

_RULE_KEYS = ("name", "when", "then", "reason")
_THEN_KEYS = ("action", "strategy", "tone", "confidence")
_REASON_FIELDS = ("score", "streak", "dominant", "turns", "sessions")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a rule (or a flow state) decides, and the template of its reason."""

    action: Action
    strategy: Strategy
    tone: Tone
    confidence: float
    reason_template: str


@dataclass(frozen=True, slots=True)
class FileRule:
    """One rule as loaded: its conditions, its decision and how it explains itself."""

    name: str
    when: Condition
    action: Action
    strategy: Strategy
    tone: Tone
    confidence: float
    reason_template: str
    line: int

    def matches(self, context: TurnContext) -> bool:
        return self.when.holds(context)

    def reason(self, context: TurnContext) -> str:
        """The reason, its fields filled from what the conditions measured."""
        emotion = _first(self.when, EmotionAtLeast)
        streak = _first(self.when, MoodStreak)
        return render_reason(
            self.reason_template,
            context,
            score=f"{min(1.0, emotion.score(context)):.2f}" if emotion else "",
            streak=streak.streak(context) if streak else 0,
        )


def render_reason(template: str, context: TurnContext, *, score: str = "", streak: int = 0) -> str:
    """A reason template with its fields (`_REASON_FIELDS`) filled in."""
    return template.format(
        score=score,
        streak=streak,
        dominant=context.emotion.dominant,
        turns=context.history.turns,
        sessions=context.history.sessions,
    )


def _first(condition: Condition, kind: type[_T]) -> _T | None:
    if isinstance(condition, kind):
        return condition
    if isinstance(condition, AllOf | AnyOf):
        for inner in condition.conditions:
            if (found := _first(inner, kind)) is not None:
                return found
    return None


def load_rules(path: Path) -> tuple[FileRule, ...]:
    """The rules of a YAML file; `ConfigError` with file and line for anything wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read rule file {path}: {exc}") from exc
    return parse_rules(text, source=str(path))


def parse_rules(text: str, *, source: str = "<rules>") -> tuple[FileRule, ...]:
    """The rules in YAML `text`; `source` names it in errors."""
    return YamlReader(source).rules(compose(text, source))


def compose(text: str, source: str) -> Node | None:
    """The YAML node tree of `text` (line numbers kept); `ConfigError` for bad syntax."""
    try:
        node: Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{line}: not valid YAML ({exc}); fix the syntax") from exc
    return node


class YamlReader:
    """Walks the YAML nodes, building rules and failing with the node's line."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._constructor = SafeConstructor()

    def fail(self, node: Node | None, message: str) -> ConfigError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return ConfigError(f"{self._source}{line}: {message}")

    def value(self, node: Node) -> Any:
        try:
            return self._constructor.construct_object(node, deep=True)
        except ConstructorError as exc:
            raise self.fail(node, f"unreadable value ({exc.problem})") from exc

    def mapping(self, node: Node, what: str) -> dict[str, tuple[Node, Node]]:
        """Key -> (key node, value node) of a mapping; duplicate keys are an error."""
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping (key: value lines)")
        found: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str):
                raise self.fail(key_node, f"{what}: keys must be words, got {key!r}")
            if key in found:
                raise self.fail(key_node, f"{what}: {key!r} appears twice; keep one")
            found[key] = (key_node, value_node)
        return found

    def only(
        self, entries: dict[str, tuple[Node, Node]], allowed: tuple[str, ...], what: str
    ) -> None:
        for key, (key_node, _) in entries.items():
            if key not in allowed:
                raise self.fail(key_node, f"{what}: unknown key {key!r}{_hint(key, allowed)}")

    def rules(self, root: Node | None) -> tuple[FileRule, ...]:
        if root is None:
            raise self.fail(None, "the file is empty; it needs 'version: 1' and 'rules:'")
        top = self.mapping(root, "the file")
        self.only(top, ("version", "rules"), "the file")
        if "version" not in top or self.value(top["version"][1]) != FORMAT_VERSION:
            node = top["version"][1] if "version" in top else root
            raise self.fail(node, f"the file needs 'version: {FORMAT_VERSION}'")
        if "rules" not in top:
            raise self.fail(root, "the file needs a 'rules:' list")
        rules_node = top["rules"][1]
        if not isinstance(rules_node, SequenceNode) or not rules_node.value:
            raise self.fail(rules_node, "'rules' must be a non-empty list of rules ('- name: ...')")
        rules = [self.rule(node) for node in rules_node.value]
        seen: dict[str, FileRule] = {}
        for rule in rules:
            if rule.name in seen:
                raise ConfigError(
                    f"{self._source}:{rule.line}: rule name {rule.name!r} is already used on "
                    f"line {seen[rule.name].line}; names must be unique"
                )
            seen[rule.name] = rule
        return tuple(rules)

    def rule(self, node: Node) -> FileRule:
        entries = self.mapping(node, "a rule")
        self.only(entries, _RULE_KEYS, "a rule")
        for key in _RULE_KEYS:
            if key not in entries:
                raise self.fail(node, f"a rule needs '{key}:' (a rule has {', '.join(_RULE_KEYS)})")
        name = self.name(entries["name"][1], "a rule")
        what = f"rule {name!r}"
        outcome = self.outcome(entries["then"][1], entries["reason"][1], what)
        return FileRule(
            name=name,
            when=self.condition(entries["when"][1], what),
            action=outcome.action,
            strategy=outcome.strategy,
            tone=outcome.tone,
            confidence=outcome.confidence,
            reason_template=outcome.reason_template,
            line=node.start_mark.line + 1,
        )

    def name(self, node: Node, what: str) -> str:
        value = self.value(node)
        if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,47}", value):
            raise self.fail(node, f"{what}'s name is lower-case letters, digits and _ (max 48)")
        return value

    def outcome(self, then_node: Node, reason_node: Node, what: str) -> Outcome:
        """A ``then`` mapping (action, strategy, tone, confidence) and its ``reason``."""
        then = self.mapping(then_node, f"{what}: then")
        self.only(then, _THEN_KEYS, f"{what}: then")
        for key in _THEN_KEYS:
            if key not in then:
                raise self.fail(then_node, f"{what}: then needs '{key}:'")
        reason = self.value(reason_node)
        if not isinstance(reason, str) or not reason.strip():
            raise self.fail(reason_node, f"{what}: reason must be a sentence")
        self.check_template(reason, reason_node, what)
        return Outcome(
            action=self.choice(then["action"][1], Action, f"{what}: action"),
            strategy=self.choice(then["strategy"][1], Strategy, f"{what}: strategy"),
            tone=self.choice(then["tone"][1], Tone, f"{what}: tone"),
            confidence=self.number(then["confidence"][1], f"{what}: confidence", 0.0, 1.0),
            reason_template=reason,
        )

    def check_template(self, reason: str, node: Node, what: str) -> None:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(reason) if f is not None]
        except ValueError as exc:
            raise self.fail(node, f"{what}: reason has a broken {{field}} ({exc})") from exc
        for field in fields:
            if field not in _REASON_FIELDS:
                raise self.fail(
                    node,
                    f"{what}: reason field {{{field}}} is unknown; use {{"
                    + "}, {".join(_REASON_FIELDS)
                    + "}",
                )

    def choice(self, node: Node, kind: type[_E], what: str) -> _E:
        value = self.value(node)
        names = tuple(member.value for member in kind)
        if value not in names:
            raise self.fail(node, f"{what} must be one of {', '.join(names)}, got {value!r}")
        return kind(value)

    def choices(self, node: Node, kind: Any, what: str) -> frozenset[Any]:
        nodes = node.value if isinstance(node, SequenceNode) else [node]
        return frozenset(self.choice(item, kind, what) for item in nodes)

    def number(self, node: Node, what: str, low: float, high: float) -> float:
        value = self.value(node)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise self.fail(
                node, f"{what} must be a number from {low:g} to {high:g}, got {value!r}"
            )
        return float(value)

    def integer(self, node: Node, what: str, low: int, high: int) -> int:
        value = self.value(node)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(
                node, f"{what} must be a whole number from {low} to {high}, got {value!r}"
            )
        return value

    def labels(self, node: Node, what: str) -> tuple[str, ...]:
        nodes = node.value if isinstance(node, SequenceNode) else [node]
        names = [self.value(item) for item in nodes]
        try:
            return expand_labels([str(n) for n in names])
        except ValueError as exc:
            raise self.fail(
                node,
                f"{what}: {exc.args[0]!r} is not an emotion; use GoEmotions labels or Ekman "
                "groups (anger, disgust, fear, joy, sadness, surprise, neutral)",
            ) from exc

    def condition(self, node: Node, what: str) -> Condition:
        """A ``when`` mapping: every key one condition, all of which must hold."""
        entries = self.mapping(node, f"{what}: when")
        if not entries:
            raise self.fail(node, f"{what}: when needs at least one condition")
        built = []
        for key, (key_node, value_node) in entries.items():
            build = _BUILDERS.get(key)
            if build is None:
                raise self.fail(
                    key_node,
                    f"{what}: unknown condition {key!r}{_hint(key, tuple(_BUILDERS))}; "
                    f"conditions are: {', '.join(_BUILDERS)}",
                )
            built.append(build(self, value_node, f"{what}: {key}"))
        return built[0] if len(built) == 1 else AllOf(tuple(built))

    def bounds(self, node: Node, what: str, keys: tuple[str, str]) -> dict[str, float]:
        entries = self.mapping(node, what)
        self.only(entries, keys, what)
        if not entries:
            raise self.fail(node, f"{what} needs {' or '.join(keys)}")
        return {k: self.number(v, f"{what}: {k}", -1e9, 1e9) for k, (_, v) in entries.items()}


def _emotion(reader: YamlReader, node: Node, what: str) -> Condition:
    entries = reader.mapping(node, what)
    reader.only(entries, ("labels", "at_least", "over", "turns"), what)
    if "labels" not in entries or "at_least" not in entries:
        raise reader.fail(node, f"{what} needs 'labels:' and 'at_least:'")
    return EmotionAtLeast(
        labels=reader.labels(entries["labels"][1], what),
        threshold=reader.number(entries["at_least"][1], f"{what}: at_least", 0.0, 1.0),
        over=reader.labels(entries["over"][1], what) if "over" in entries else (),
        turns=reader.integer(entries["turns"][1], f"{what}: turns", 1, 20)
        if "turns" in entries
        else 1,
    )


def _numeric(field: str) -> Callable[[YamlReader, Node, str], Condition]:
    def build(reader: YamlReader, node: Node, what: str) -> Condition:
        limits = reader.bounds(node, what, ("at_least", "below"))
        return Numeric(field, at_least=limits.get("at_least"), below=limits.get("below"))

    return build


def _matches(reader: YamlReader, node: Node, what: str) -> Condition:
    pattern = reader.value(node)
    if not isinstance(pattern, str) or not pattern:
        raise reader.fail(node, f"{what} must be a regular expression in quotes")
    try:
        return Matches(re.compile(pattern, re.IGNORECASE))
    except re.error as exc:
        raise reader.fail(node, f"{what}: not a valid regular expression ({exc})") from exc


def _returning(reader: YamlReader, node: Node, what: str) -> Condition:
    value = reader.value(node)
    if not isinstance(value, bool):
        raise reader.fail(node, f"{what} must be true or false")
    return Returning(value)


def _mood_streak(reader: YamlReader, node: Node, what: str) -> Condition:
    entries = reader.mapping(node, what)
    reader.only(entries, ("mood", "at_least"), what)
    if "mood" not in entries or "at_least" not in entries:
        raise reader.fail(node, f"{what} needs 'mood:' (an Ekman group) and 'at_least:'")
    mood = reader.value(entries["mood"][1])
    groups = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")
    if mood not in groups:
        raise reader.fail(entries["mood"][1], f"{what}: mood must be one of {', '.join(groups)}")
    return MoodStreak(str(mood), reader.integer(entries["at_least"][1], what, 1, 3))


def _turn(reader: YamlReader, node: Node, what: str) -> Condition:
    entries = reader.mapping(node, what)
    reader.only(entries, ("at_least", "at_most"), what)
    if not entries:
        raise reader.fail(node, f"{what} needs at_least or at_most")
    values = {k: reader.integer(v, f"{what}: {k}", 1, 100_000) for k, (_, v) in entries.items()}
    return TurnCount(at_least=values.get("at_least"), at_most=values.get("at_most"))


def _hour(reader: YamlReader, node: Node, what: str) -> Condition:
    entries = reader.mapping(node, what)
    reader.only(entries, ("from", "to"), what)
    if set(entries) != {"from", "to"}:
        raise reader.fail(node, f"{what} needs 'from:' and 'to:' (UTC hours 0-23)")
    return HourBetween(
        reader.integer(entries["from"][1], f"{what}: from", 0, 23),
        reader.integer(entries["to"][1], f"{what}: to", 0, 24),
    )


def _nested(kind: type[AllOf] | type[AnyOf]) -> Callable[[YamlReader, Node, str], Condition]:
    def build(reader: YamlReader, node: Node, what: str) -> Condition:
        if not isinstance(node, SequenceNode) or not node.value:
            raise reader.fail(node, f"{what} must be a non-empty list of conditions")
        return kind(tuple(reader.condition(item, what) for item in node.value))

    return build


def _not(reader: YamlReader, node: Node, what: str) -> Condition:
    return Not(reader.condition(node, what))


def _always(reader: YamlReader, node: Node, what: str) -> Condition:
    if reader.value(node) is not True:
        raise reader.fail(node, f"{what} must be true (a rule that always holds)")
    return AllOf(())


_BUILDERS: dict[str, Callable[[YamlReader, Node, str], Condition]] = {
    "emotion": _emotion,
    "valence": _numeric("valence"),
    "arousal": _numeric("arousal"),
    "intensity": _numeric("intensity"),
    "matches": _matches,
    "trajectory": lambda r, n, w: TrajectoryIs(r.choices(n, Trajectory, w)),
    "trend": lambda r, n, w: TrendIs(r.choices(n, Trend, w)),
    "returning": _returning,
    "mood_streak": _mood_streak,
    "turn": _turn,
    "hour": _hour,
    "all": _nested(AllOf),
    "any": _nested(AnyOf),
    "not": _not,
    "always": _always,
}


def _hint(word: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
