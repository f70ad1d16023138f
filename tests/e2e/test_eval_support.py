"""`heartline eval emotion` on a support TSV, as a user runs it: per language, PNGs named."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import heartline
from tests.support.emotion_data import write_support


def test_scores_each_language_and_says_where_each_png_went(tmp_path: Path) -> None:
    data = write_support(tmp_path / "support.tsv")
    png = tmp_path / "out" / "c.png"
    args = ("--data", str(data), "--model", "lexicon", "--confusion", str(png))
    result = heartline("eval", "emotion", *args, "--domain", "general")
    assert result.returncode == 0, result.stderr
    assert "predicted: the groups of the reading's present labels" in result.stdout
    assert "en (lexicon-v1): 3 messages, accuracy 1.0000" in result.stdout
    assert "zh (lexicon-v1): 2 messages, accuracy 1.0000" in result.stdout
    for language in ("en", "zh"):
        drawn = tmp_path / "out" / f"c-{language}.png"
        assert f"Confusion matrix ({language}): {drawn}" in result.stdout
        assert drawn.read_bytes().startswith(b"\x89PNG")


def test_json_gives_each_language_its_figures(tmp_path: Path) -> None:
    data = write_support(tmp_path / "support.tsv")
    png = tmp_path / "c.png"
    args = ("--data", str(data), "--format", "support", "--model", "lexicon", "--json")
    args += ("--domain", "general")
    result = heartline("eval", "emotion", *args, "--confusion", str(png))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["format"] == "support"
    assert set(summary["languages"]) == {"en", "zh"}
    english = summary["languages"]["en"]
    assert english["messages"] == 3
    assert english["accuracy"] == 1.0
    assert 0.0 < english["macro_f1"] <= 1.0
    assert set(english["ekman"]["per_class"]) == {
        "anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral",
    }  # fmt: skip
    assert english["confusion_png"] == str(tmp_path / "c-en.png")


def test_support_text_is_read_as_support_text_unless_asked_otherwise(tmp_path: Path) -> None:
    data = write_support(tmp_path / "support.tsv")
    png = tmp_path / "c.png"
    args = ("--data", str(data), "--model", "lexicon", "--json", "--confusion", str(png))
    support = json.loads(heartline("eval", "emotion", *args).stdout)
    general = json.loads(heartline("eval", "emotion", *args, "--domain", "general").stdout)
    assert support["languages"]["en"]["model"] == "lexicon-v1+support"
    assert general["languages"]["en"]["model"] == "lexicon-v1"


def test_without_data_only_the_support_format_has_a_default(tmp_path: Path) -> None:
    result = heartline("eval", "emotion", "--model", "lexicon")
    assert result.returncode == 2
    assert "needs --data FILE" in result.stderr
