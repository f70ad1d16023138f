"""FAQ knowledge files: questions and answers per language, validated on load.

A knowledge file is YAML (``version: 1`` and a list of ``entries``, each with an
``id``, one or more ``questions`` per language and one ``answer`` per language) or a
CSV with the columns ``id,language,question,answer``, one phrasing per row. Every
problem is a `ConfigError` that names the file, the entry and what to change.
`agent.generation.faq_index` matches turns against the entries.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent.errors import ConfigError
from agent.language import Language

__all__ = ["EXAMPLE_KNOWLEDGE", "LANGUAGES", "FaqEntry", "match_key", "read_knowledge"]

EXAMPLE_KNOWLEDGE = Path(__file__).parent / "knowledge" / "customer_service.yaml"

LANGUAGES: tuple[Language, ...] = ("en", "zh")
_VERSION = 1
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ENTRY_KEYS = frozenset({"id", "questions", "answers"})
_CSV_COLUMNS = ("id", "language", "question", "answer")
_NOT_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class FaqEntry:
    """One question of the knowledge file: its phrasings and answer per language."""

    id: str
    questions: Mapping[Language, tuple[str, ...]]
    answers: Mapping[Language, str]


def match_key(text: str) -> str:
    """Lower-cased letters and digits only: punctuation and spaces carry nothing in a match."""
    return _NOT_WORD.sub("", text.lower())


def read_knowledge(path: Path) -> tuple[FaqEntry, ...]:
    """The validated entries of a ``.yaml``/``.yml`` or ``.csv`` knowledge file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the knowledge file: {exc}") from exc
    if path.suffix.lower() == ".csv":
        raw_entries = _csv_entries(path, text)
    elif path.suffix.lower() in (".yaml", ".yml"):
        raw_entries = _yaml_entries(path, text)
    else:
        raise ConfigError(f"{path}: a knowledge file must end in .yaml, .yml or .csv")
    if not raw_entries:
        raise ConfigError(f"{path}: the knowledge file has no entries; add at least one")
    entries: list[FaqEntry] = []
    seen: set[str] = set()
    for number, raw in enumerate(raw_entries, start=1):
        entry = _entry(path, number, raw)
        if entry.id in seen:
            raise ConfigError(
                f"{path}: entry {entry.id!r} (#{number}): duplicate id; make ids unique"
            )
        seen.add(entry.id)
        entries.append(entry)
    _check_phrasings_unique(path, entries)
    return tuple(entries)


def _yaml_entries(path: Path, text: str) -> list[Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping with `version: 1` and `entries:`")
    if document.get("version") != _VERSION:
        raise ConfigError(
            f"{path}: unsupported version {document.get('version')!r}; write `version: 1`"
        )
    unknown = set(document) - {"version", "entries"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level keys {sorted(unknown)}; expected `entries`")
    entries = document.get("entries")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: `entries` must be a list of entries")
    return entries


def _csv_entries(path: Path, text: str) -> list[Any]:
    """One row per phrasing; an id's rows in one language share one answer (blank repeats it)."""
    reader = csv.DictReader(text.splitlines())
    if tuple(reader.fieldnames or ()) != _CSV_COLUMNS:
        raise ConfigError(f"{path}: the CSV header must be exactly {','.join(_CSV_COLUMNS)}")
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for row in reader:
        line = reader.line_num
        if None in row or any(value is None for value in row.values()):
            raise ConfigError(f"{path}: line {line}: expected {len(_CSV_COLUMNS)} columns")
        entry_id, language = row["id"].strip(), row["language"].strip()
        raw = grouped.setdefault(entry_id, {"questions": {}, "answers": {}})
        raw["questions"].setdefault(language, []).append(row["question"])
        answer = row["answer"].strip()
        known = raw["answers"].get(language)
        if answer and known is not None and answer != known:
            raise ConfigError(
                f"{path}: line {line}: entry {entry_id!r} has two different {language} answers;"
                " give the answer once, or repeat it exactly"
            )
        if answer:
            raw["answers"][language] = answer
    return [{"id": entry_id, **raw} for entry_id, raw in grouped.items()]


def _entry(path: Path, number: int, raw: Any) -> FaqEntry:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: entry #{number} must be a mapping with id, questions, answers")
    entry_id = raw.get("id")
    if not isinstance(entry_id, str) or not _ID.match(entry_id):
        raise ConfigError(
            f"{path}: entry #{number}: id {entry_id!r} must be lower_snake_case (e.g. order_status)"
        )
    where = f"{path}: entry {entry_id!r} (#{number})"
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown keys {sorted(unknown)}; expected id, questions, answers"
        )
    questions = _per_language(where, "questions", raw.get("questions"))
    answers = _per_language(where, "answers", raw.get("answers"))
    if not questions:
        raise ConfigError(f"{where}: no questions; add `questions: {{en: [...], zh: [...]}}`")
    parsed_questions: dict[Language, tuple[str, ...]] = {}
    parsed_answers: dict[Language, str] = {}
    for language in LANGUAGES:
        if language in questions:
            parsed_questions[language] = _phrasings(where, language, questions[language])
            if language not in answers:
                raise ConfigError(
                    f"{where}: questions in {language} but no {language} answer;"
                    f" add `answers: {{{language}: ...}}`"
                )
        if language in answers:
            if language not in questions:
                raise ConfigError(
                    f"{where}: an {language} answer but no {language} questions;"
                    f" add `questions: {{{language}: [...]}}`"
                )
            parsed_answers[language] = _text(where, f"answers.{language}", answers[language])
    return FaqEntry(id=entry_id, questions=parsed_questions, answers=parsed_answers)


def _per_language(where: str, key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: `{key}` must map a language (en, zh) to its {key}")
    unknown = set(value) - set(LANGUAGES)
    if unknown:
        raise ConfigError(
            f"{where}: `{key}` has unsupported languages {sorted(map(str, unknown))};"
            f" use {', '.join(LANGUAGES)}"
        )
    return value


def _phrasings(where: str, language: Language, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}: `questions.{language}` must be a non-empty list of strings")
    phrasings = tuple(_text(where, f"questions.{language}", item) for item in items)
    for phrasing in phrasings:
        if not match_key(phrasing):
            raise ConfigError(f"{where}: question {phrasing!r} has no words to match")
    return phrasings


def _check_phrasings_unique(path: Path, entries: Sequence[FaqEntry]) -> None:
    """One phrasing in two entries would make the file answer it two ways."""
    for language in LANGUAGES:
        owner: dict[str, str] = {}
        for entry in entries:
            for phrasing in entry.questions.get(language, ()):
                first = owner.setdefault(match_key(phrasing), entry.id)
                if first != entry.id:
                    raise ConfigError(
                        f"{path}: entry {entry.id!r}: the {language} question {phrasing!r} is"
                        f" also a question of entry {first!r}; keep it in one of them"
                    )


def _text(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: `{key}` must be non-empty text")
    return value.strip()
