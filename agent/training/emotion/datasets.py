"""Readers for the emotion data sets: GoEmotions TSV, SMP2020-EWECT TSV and MELD CSV.

Every example comes out in the one label space, GoEmotions' fine labels: the
SMP2020 and MELD classes map onto the labels of the same name, so training,
evaluation and policies see one reading whatever the source. Each file is
validated as it is read; a malformed row raises `ConfigError` naming the file
and line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from agent.emotion.labels import LABELS
from agent.errors import ConfigError
from agent.language import Language

__all__ = [
    "MELD_CLASSES",
    "SMP2020_CLASSES",
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


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Dataset:
    format: DataFormat
    language: Language
    examples: tuple[Example, ...]

    @property
    def multi_label(self) -> bool:
        return self.format is DataFormat.GOEMOTIONS

    def classes(self) -> tuple[str, ...]:
        """The labels this data set can hold, in a stable order."""
        if self.format is DataFormat.SMP2020:
            return tuple(SMP2020_CLASSES.values())
        if self.format is DataFormat.MELD:
            return tuple(MELD_CLASSES.values())
        return LABELS


def detect_format(path: Path) -> DataFormat:
    """Tell the format from the file's first line; raise `ConfigError` if none fits."""
    try:
        with path.open(encoding="utf-8") as file:
            first = file.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if first.startswith("Sr No.,Utterance,"):
        return DataFormat.MELD
    columns = first.split("\t")
    if len(columns) == 3 and columns[1] in SMP2020_CLASSES:
        return DataFormat.SMP2020
    if len(columns) == 3 and all(part.isdigit() for part in columns[1].split(",")):
        return DataFormat.GOEMOTIONS
    raise ConfigError(
        f"{path}: not a GoEmotions TSV, SMP2020 TSV or MELD CSV file; "
        "pass --format goemotions|smp2020|meld if it is one"
    )


def read_dataset(path: Path, data_format: DataFormat | None = None) -> Dataset:
    """Read every example of `path` (format detected unless given)."""
    data_format = data_format or detect_format(path)
    readers = {
        DataFormat.GOEMOTIONS: _goemotions,
        DataFormat.SMP2020: _smp2020,
        DataFormat.MELD: _meld,
    }
    try:
        examples = tuple(readers[data_format](path))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not examples:
        raise ConfigError(f"{path} holds no examples")
    language: Language = "zh" if data_format is DataFormat.SMP2020 else "en"
    return Dataset(format=data_format, language=language, examples=examples)


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
        yield Example(text=text, labels=labels)


def _smp2020(path: Path) -> Iterator[Example]:
    for number, (text, label, _) in _tsv_rows(path):
        if label not in SMP2020_CLASSES:
            raise ConfigError(f"{path}:{number}: unknown label {label!r}")
        if text.strip():
            yield Example(text=text, labels=(SMP2020_CLASSES[label],))


def _meld(path: Path) -> Iterator[Example]:
    with path.open(encoding="utf-8", newline="") as file:
        for number, row in enumerate(csv.DictReader(file), start=2):
            label = row.get("Emotion") or ""
            if label not in MELD_CLASSES:
                raise ConfigError(f"{path}:{number}: unknown emotion {label!r}")
            yield Example(text=row.get("Utterance") or "", labels=(MELD_CLASSES[label],))
