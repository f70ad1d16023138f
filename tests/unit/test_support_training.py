"""`heartline train support`'s trainer: deterministic heads that learn their messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.emotion.labels import EKMAN_OF
from agent.emotion.lexicon import LexiconRecognizer
from agent.emotion.support_head import SupportHead
from agent.emotion.support_reader import SupportReader
from agent.errors import ConfigError
from agent.training.emotion.support_head import train_support_head

_MESSAGES = {
    "anger": [
        "退钱，马上。", "你们到底有没有人管", "第三次了还不处理",
        "说好的今天到呢", "客服一直不回", "再不处理我就投诉",
    ],
    "neutral": [
        "请问发票怎么开", "帮我查一下物流", "我想改一下地址",
        "订单号是多少", "几点能送到", "可以开专票吗",
    ],
    "fear": [
        "钱不会没了吧", "账户会不会被盗", "我好像转错账了",
        "这样会影响征信吗", "急急急，卡被锁了", "有人冒用我的身份",
    ],
}  # fmt: skip


def _write(path: Path) -> Path:
    rows = ["text\tlabels\tlanguage"]
    rows += [f"{text}\t{group}\tzh" for group, texts in _MESSAGES.items() for text in texts]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_a_head_is_the_same_each_time_and_learns_its_messages(tmp_path: Path) -> None:
    data = _write(tmp_path / "train.tsv")
    lexicon = LexiconRecognizer()
    first = train_support_head(lexicon, "zh", data)
    first.save(tmp_path / "a")
    train_support_head(lexicon, "zh", data).save(tmp_path / "b")
    a, b = (np.load(tmp_path / name / "head.npz") for name in ("a", "b"))
    assert np.array_equal(a["coef"], b["coef"])
    assert first.config.base_model == lexicon.name
    reader = SupportReader(lexicon, heads={"zh": SupportHead.load(tmp_path / "a")})
    texts = [text for texts in _MESSAGES.values() for text in texts]
    right = sum(
        EKMAN_OF[reading.dominant] == group
        for reading, group in zip(
            reader.predict(texts),
            [group for group, texts in _MESSAGES.items() for _ in texts],
            strict=True,
        )
    )
    assert right >= 0.9 * len(texts)


def test_too_few_messages_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "tiny.tsv"
    data.write_text("text\tlabels\tlanguage\n退钱\tanger\tzh\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="too few"):
        train_support_head(LexiconRecognizer(), "zh", data)
