"""The support evaluation format: reading and validating the TSV, scoring one language."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.emotion.labels import LABELS, reading_from
from agent.errors import ConfigError
from agent.training.emotion.datasets import DataFormat, Example, detect_format, read_dataset
from agent.training.emotion.scoring import EKMAN_CLASSES
from agent.training.emotion.support import score_language
from agent.values import EmotionReading

HEADER = "text\tlabels\tlanguage\n"


def _write(path: Path, body: str, *, header: str = HEADER, bom: bool = False) -> Path:
    path.write_text(("\ufeff" if bom else "") + header + body, encoding="utf-8")
    return path


def test_reads_each_message_with_its_groups_and_language(tmp_path: Path) -> None:
    data = _write(
        tmp_path / "s.tsv",
        "My parcel is late again\tanger, sadness\ten\n"
        "谢谢，解决了\tjoy\tzh\n"
        "Where is it?\tneutral\ten\n",
    )
    dataset = read_dataset(data)
    assert dataset.format is DataFormat.SUPPORT
    assert dataset.examples[0] == Example("My parcel is late again", ("anger", "sadness"), "en")
    assert dataset.languages == ("en", "zh")
    assert [e.text for e in dataset.in_language("en").examples] == [
        "My parcel is late again",
        "Where is it?",
    ]


def test_the_header_tells_the_format_even_after_a_byte_order_mark(tmp_path: Path) -> None:
    data = _write(tmp_path / "s.tsv", "hi\tjoy\ten\n", bom=True)
    assert detect_format(data) is DataFormat.SUPPORT
    assert read_dataset(data).examples == (Example("hi", ("joy",), "en"),)


@pytest.mark.parametrize(
    ("body", "header", "message"),
    [
        ("hi\tjoy\ten\n", "text\tlabel\tlanguage\n", ":1: the first line must be the header"),
        ("hi\tjoy\n", HEADER, ":2: expected 3 tab-separated columns"),
        ("hi\tjoy\ten\n \tjoy\ten\n", HEADER, ":3: the text is empty"),
        ("hi\tjoy,happy\ten\n", HEADER, ":2: 'happy' is not an Ekman group"),
        ("hi\t\ten\n", HEADER, ":2: '' is not an Ekman group"),
        ("hi\tjoy,joy\ten\n", HEADER, ":2: labels repeat a group"),
        ("hi\tjoy\tfr\n", HEADER, ":2: language must be en or zh, got 'fr'"),
        ("", HEADER, "holds no examples"),
    ],
)
def test_a_bad_row_names_its_file_and_line(
    body: str, header: str, message: str, tmp_path: Path
) -> None:
    data = _write(tmp_path / "s.tsv", body, header=header)
    with pytest.raises(ConfigError, match=f"^{tmp_path / 's.tsv'}.*{message}"):
        read_dataset(data, DataFormat.SUPPORT)


def _reading(*labels: str, dominant: str | None = None) -> EmotionReading:
    scores = dict.fromkeys(LABELS, 0.0) | dict.fromkeys(labels, 0.8)
    return reading_from(scores, model="m", labels=labels, dominant=dominant)


def test_accuracy_counts_the_dominant_group_among_the_gold_ones() -> None:
    gold = [("anger", "sadness"), ("joy",), ("neutral",), ("fear",)]
    readings = [
        _reading("disappointment"),  # sadness: the second gold group still counts
        _reading("gratitude", "relief"),  # joy
        _reading("curiosity"),  # surprise: wrong
        _reading("nervousness"),  # fear
    ]
    score = score_language("en", gold, readings)
    assert score.messages == 4
    assert score.accuracy == 0.75
    assert score.model == "m"


def test_macro_f1_is_over_the_seven_groups_of_the_present_labels() -> None:
    gold = [("anger", "sadness"), ("joy",)]
    readings = [_reading("annoyance", "grief", dominant="annoyance"), _reading("joy", "fear")]
    groups = score_language("en", gold, readings).groups
    f1 = {c.label: c.f1 for c in groups.per_class}
    assert f1 == {
        "anger": 1.0,
        "disgust": 0.0,
        "fear": 0.0,
        "joy": 1.0,
        "sadness": 1.0,
        "surprise": 0.0,
        "neutral": 0.0,
    }
    assert groups.macro_f1 == pytest.approx(3 / 7)


def test_the_confusion_matrix_is_the_first_gold_group_against_the_dominant_group() -> None:
    gold = [("sadness", "anger"), ("sadness",), ("joy",)]
    readings = [_reading("annoyance"), _reading("grief"), _reading("grief")]
    confusion = score_language("zh", gold, readings).confusion
    row = {name: EKMAN_CLASSES.index(name) for name in EKMAN_CLASSES}
    assert confusion[row["sadness"]][row["anger"]] == 1
    assert confusion[row["sadness"]][row["sadness"]] == 1
    assert confusion[row["joy"]][row["sadness"]] == 1
    assert sum(map(sum, confusion)) == 3
