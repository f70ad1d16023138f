"""The shipped Chinese model: unambiguous sentences, odd input, a malformed artifact."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.emotion.chinese import DEFAULT_ARTIFACT, ChineseEmotionModel
from agent.emotion.labels import LABELS
from agent.errors import ConfigError

SMP_LABELS = {"anger", "joy", "neutral", "sadness", "fear", "surprise"}


@pytest.fixture(scope="module")
def model() -> ChineseEmotionModel:
    return ChineseEmotionModel.load()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("气死我了！这个客服太垃圾了，简直不可理喻，我要投诉！", "anger"),
        ("今天收到了心仪的礼物，好开心啊，哈哈哈！", "joy"),
        ("外婆去世了，我好难过，一直在哭。", "sadness"),
        ("半夜听到门外有奇怪的声音，好害怕，不敢睡觉。", "fear"),
        ("本次会议将于下午三点在三楼会议室召开。", "neutral"),
    ],
)
def test_reads_unambiguous_sentences(model: ChineseEmotionModel, text: str, expected: str) -> None:
    (reading,) = model.predict([text])
    assert reading.dominant == expected
    assert reading.labels == (expected,)


def test_reading_covers_every_label(model: ChineseEmotionModel) -> None:
    (reading,) = model.predict(["我今天很高兴"])
    assert set(reading.scores) == set(LABELS)
    assert sum(reading.scores.values()) == pytest.approx(1.0, abs=1e-4)
    assert all(reading.scores[label] == 0.0 for label in set(LABELS) - SMP_LABELS)
    assert reading.model == "smp2020-chinese-v1"
    assert reading.valence > 0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "I am so happy today!",
        "😀😡🎉",
        "今天好开心 but so tired 😭",
        "好" * 20_000,
        "\x00\n\t",
    ],
)
def test_odd_input_never_crashes(model: ChineseEmotionModel, text: str) -> None:
    (reading,) = model.predict([text])
    assert reading.dominant in SMP_LABELS


def test_empty_text_is_neutral(model: ChineseEmotionModel) -> None:
    assert [r.dominant for r in model.predict(["", " \n "])] == ["neutral", "neutral"]


def test_batch_keeps_order(model: ChineseEmotionModel) -> None:
    texts = ["气死我了！", "好开心啊！", "好难过"]
    assert [r.dominant for r in model.predict(texts)] == [
        model.predict([t])[0].dominant for t in texts
    ]
    assert model.predict([]) == []


def test_missing_artifact_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no Chinese model"):
        ChineseEmotionModel.load(tmp_path)


@pytest.mark.parametrize(
    ("name", "content"),
    [("config.json", "{not json"), ("config.json", '{"format_version": 99}'), ("model.npz", "x")],
)
def test_malformed_artifact_is_a_config_error(tmp_path: Path, name: str, content: str) -> None:
    shutil.copytree(DEFAULT_ARTIFACT, tmp_path / "m")
    (tmp_path / "m" / name).write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError):
        ChineseEmotionModel.load(tmp_path / "m")


def test_save_then_load_round_trips(model: ChineseEmotionModel, tmp_path: Path) -> None:
    model.save(tmp_path)
    again = ChineseEmotionModel.load(tmp_path)
    text = ["这也太让人意外了吧！"]
    assert again.predict(text)[0].scores == pytest.approx(model.predict(text)[0].scores, abs=1e-3)
