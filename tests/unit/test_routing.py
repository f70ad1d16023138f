"""Language routing: each text to its language's recognizer, the fallback when there is none."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from agent.emotion.lexicon import LexiconRecognizer
from agent.emotion.routing import LanguageRouter
from agent.values import EmotionReading


class Tagging:
    """Reads with the lexicon under its own model name and records each call."""

    def __init__(self, name: str, *, fails: bool = False, short: bool = False) -> None:
        self.name = name
        self._fails = fails
        self._short = short
        self._lexicon = LexiconRecognizer()
        self.calls: list[list[str]] = []

    async def read_batch(self, texts: Sequence[str]) -> list[EmotionReading]:
        self.calls.append(list(texts))
        if self._fails:
            raise RuntimeError("model down")
        readings = [
            EmotionReading(
                scores=r.scores,
                dominant=r.dominant,
                valence=r.valence,
                arousal=r.arousal,
                intensity=r.intensity,
                model=self.name,
            )
            for r in await self._lexicon.read_batch(texts)
        ]
        return readings[:-1] if self._short else readings


MIXED = ["I am so happy", "我很生气", "hello", "今天太开心了", "ok 好的 谢谢你的帮助"]


async def test_each_language_gets_one_call_and_the_order_is_kept() -> None:
    en, zh, fallback = Tagging("en-model"), Tagging("zh-model"), Tagging("lexicon")
    router = LanguageRouter({"en": en, "zh": zh}, fallback)
    readings = await router.read_batch(MIXED)
    assert [r.model for r in readings] == [
        "en-model",
        "zh-model",
        "en-model",
        "zh-model",
        "zh-model",
    ]
    assert en.calls == [["I am so happy", "hello"]]
    assert zh.calls == [["我很生气", "今天太开心了", "ok 好的 谢谢你的帮助"]]
    assert fallback.calls == []
    assert readings[1].dominant == "anger"


async def test_a_language_without_a_model_goes_to_the_fallback() -> None:
    en, fallback = Tagging("en-model"), Tagging("lexicon")
    router = LanguageRouter({"en": en}, fallback)
    readings = await router.read_batch(MIXED)
    assert [r.model for r in readings] == ["en-model", "lexicon", "en-model", "lexicon", "lexicon"]
    assert "fallback=lexicon" in router.name


@pytest.mark.parametrize(
    "broken", [Tagging("zh-model", fails=True), Tagging("zh-model", short=True)]
)
async def test_a_failing_model_falls_back_for_its_texts_only(broken: Tagging) -> None:
    en, fallback = Tagging("en-model"), Tagging("lexicon")
    router = LanguageRouter({"en": en, "zh": broken}, fallback)
    readings = await router.read_batch(MIXED)
    assert [r.model for r in readings] == ["en-model", "lexicon", "en-model", "lexicon", "lexicon"]
    assert fallback.calls == [["我很生气", "今天太开心了", "ok 好的 谢谢你的帮助"]]


async def test_odd_texts_do_not_crash() -> None:
    router = LanguageRouter({}, LexiconRecognizer())
    texts = ["", "   ", "😡😡😡", "١٢٣ مرحبا", "ｈｅｌｌｏ 你", "\u0000", "a" * 5000]
    readings = await router.read_batch(texts)
    assert len(readings) == len(texts)
    assert await router.read_batch([]) == []


async def test_a_failing_fallback_raises() -> None:
    router = LanguageRouter({}, Tagging("lexicon", fails=True))
    with pytest.raises(RuntimeError, match="model down"):
        await router.read_batch(["hi"])
