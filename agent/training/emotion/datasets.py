"""Readers for the emotion data sets: GoEmotions TSV, SMP2020-EWECT TSV, MELD CSV, support TSV.

Every example comes out in the one label space, GoEmotions' fine labels: the
SMP2020 and MELD classes and the support set's Ekman groups map onto the
labels of the same name, so training, evaluation and policies see one reading
whatever the source. Each file is validated as it is read; a malformed row
raises `ConfigError` naming the file and line.

The support format is Heartline's own, for customer-support messages in both
languages: UTF-8, tab-separated, the header line ``text<TAB>labels<TAB>language``,
then per message its text, a comma-separated set of Ekman groups (anger,
disgust, fear, joy, sadness, surprise, neutral; the first is the main one) and
``en`` or ``zh``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from agent.emotion.labels import EKMAN, LABELS
from agent.errors import ConfigError
from agent.language import Language

__all__ = [
    "MELD_CLASSES",
    "SMP2020_CLASSES",
    "SUPPORT_HEADER",
    "DataFormat",
    "Dataset",
    "Example",
    "detect_format",
    "read_dataset",
]


class DataFormat(StrEnum):
    GOEMOTIONS = "goemotions"
    SMP2020 = "smp2020"
    MELD = "meld"
    SUPPORT = "support"


# SMP2020-EWECT's six classes, as GoEmotions fine labels.
SMP2020_CLASSES: Mapping[str, str] = {
    "angry": "anger",
    "happy": "joy",
    "neutral": "neutral",
    "sad": "sadness",
    "fear": "fear",
    "surprise": "surprise",
}

# MELD's seven classes are Ekman's six plus neutral, each also a GoEmotions label.
MELD_CLASSES: Mapping[str, str] = {
    name: name for name in ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
}


SUPPORT_HEADER = "text\tlabels\tlanguage"
_LANGUAGES: Mapping[str, Language] = {"en": "en", "zh": "zh"}


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    labels: tuple[str, ...]
    language: Language


@dataclass(frozen=True, slots=True)
class Dataset:
    format: DataFormat
    examples: tuple[Example, ...]

    @property
    def multi_label(self) -> bool:
        return self.format in (DataFormat.GOEMOTIONS, DataFormat.SUPPORT)

    @property
    def languages(self) -> tuple[Language, ...]:
        """The languages of its examples, in the order they first appear."""
        return tuple(dict.fromkeys(example.language for example in self.examples))

    def in_language(self, language: Language) -> Dataset:
        """The examples in `language` only."""
        examples = tuple(e for e in self.examples if e.language == language)
        return Dataset(format=self.format, examples=examples)

    def classes(self) -> tuple[str, ...]:
        """The labels this data set can hold, in a stable order."""
        if self.format is DataFormat.SMP2020:
            return tuple(SMP2020_CLASSES.values())
        if self.format is DataFormat.MELD:
            return tuple(MELD_CLASSES.values())
        if self.format is DataFormat.SUPPORT:
            return tuple(EKMAN)
        return LABELS


def detect_format(path: Path) -> DataFormat:
    """Tell the format from the file's first line; raise `ConfigError` if none fits."""
    try:
        with path.open(encoding="utf-8-sig") as file:
            first = file.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if first.startswith("Sr No.,Utterance,"):
        return DataFormat.MELD
    if first == SUPPORT_HEADER:
        return DataFormat.SUPPORT
    columns = first.split("\t")
    if len(columns) == 3 and columns[1] in SMP2020_CLASSES:
        return DataFormat.SMP2020
    if len(columns) == 3 and all(part.isdigit() for part in columns[1].split(",")):
        return DataFormat.GOEMOTIONS
    raise ConfigError(
        f"{path}: not a GoEmotions TSV, SMP2020 TSV, MELD CSV or support TSV file; "
        "pass --format goemotions|smp2020|meld|support if it is one"
    )


def read_dataset(path: Path, data_format: DataFormat | None = None) -> Dataset:
    """Read every example of `path` (format detected unless given)."""
    data_format = data_format or detect_format(path)
    readers = {
        DataFormat.GOEMOTIONS: _goemotions,
        DataFormat.SMP2020: _smp2020,
        DataFormat.MELD: _meld,
        DataFormat.SUPPORT: _support,
    }
    try:
        examples = tuple(readers[data_format](path))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not examples:
        raise ConfigError(f"{path} holds no examples")
    return Dataset(format=data_format, examples=examples)


def _tsv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            columns = line.rstrip("\r\n").split("\t")
            if len(columns) != 3:
                raise ConfigError(f"{path}:{number}: expected 3 tab-separated columns")
            yield number, columns


def _goemotions(path: Path) -> Iterator[Example]:
    for number, (text, ids, _) in _tsv_rows(path):
        try:
            labels = tuple(LABELS[int(i)] for i in ids.split(","))
        except (ValueError, IndexError) as exc:
            raise ConfigError(f"{path}:{number}: label ids must be 0-{len(LABELS) - 1}") from exc
        yield Example(text=text, labels=labels, language="en")


def _smp2020(path: Path) -> Iterator[Example]:
    for number, (text, label, _) in _tsv_rows(path):
        if label not in SMP2020_CLASSES:
            raise ConfigError(f"{path}:{number}: unknown label {label!r}")
        if text.strip():
            yield Example(text=text, labels=(SMP2020_CLASSES[label],), language="zh")


def _meld(path: Path) -> Iterator[Example]:
    with path.open(encoding="utf-8", newline="") as file:
        for number, row in enumerate(csv.DictReader(file), start=2):
            label = row.get("Emotion") or ""
            if label not in MELD_CLASSES:
                raise ConfigError(f"{path}:{number}: unknown emotion {label!r}")
            text = row.get("Utterance") or ""
            yield Example(text=text, labels=(MELD_CLASSES[label],), language="en")


def _support(path: Path) -> Iterator[Example]:
    # utf-8-sig: a byte-order mark, as spreadsheets write one, is not part of the header.
    with path.open(encoding="utf-8-sig") as file:
        header = file.readline().rstrip("\r\n")
        if header != SUPPORT_HEADER:
            raise ConfigError(
                f"{path}:1: the first line must be the header text<TAB>labels<TAB>language, "
                f"got {header[:60]!r}"
            )
        for number, line in enumerate(file, start=2):
            yield _support_row(path, number, line.rstrip("\r\n"))


def _support_row(path: Path, number: int, line: str) -> Example:
    columns = line.split("\t")
    if len(columns) != 3:
        raise ConfigError(
            f"{path}:{number}: expected 3 tab-separated columns (text, labels, language), "
            f"got {len(columns)}"
        )
    text, labels, language = columns
    if not text.strip():
        raise ConfigError(f"{path}:{number}: the text is empty")
    groups = tuple(label.strip() for label in labels.split(","))
    wrong = [label for label in groups if label not in EKMAN]
    if wrong:
        raise ConfigError(
            f"{path}:{number}: {wrong[0]!r} is not an Ekman group; labels are a comma-separated "
            f"set of {', '.join(EKMAN)}"
        )
    if len(set(groups)) != len(groups):
        raise ConfigError(f"{path}:{number}: labels repeat a group: {labels!r}")
    found = _LANGUAGES.get(language)
    if found is None:
        raise ConfigError(f"{path}:{number}: language must be en or zh, got {language!r}")
    return Example(text=text, labels=groups, language=found)
