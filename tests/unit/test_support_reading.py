"""Support text read as a support agent would: the shipped models with their support heads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.emotion.base import EmotionModel
from agent.emotion.catalog import models_for
from agent.emotion.hashed_ngrams import NGrams
from agent.emotion.labels import EKMAN_OF
from agent.emotion.lexicon import LexiconRecognizer
from agent.emotion.support import marked
from agent.emotion.support_head import GROUPS, HeadConfig, SupportHead
from agent.emotion.support_reader import SupportReader, shipped_heads
from agent.errors import ConfigError
from agent.language import detect_language


@pytest.fixture(scope="module")
def models() -> dict[str, EmotionModel]:
    return models_for("auto")  # type: ignore[return-value]


def _group(models: dict[str, EmotionModel], text: str) -> str:
    (reading,) = models[detect_language(text)].predict([text])
    return EKMAN_OF[reading.dominant]


@pytest.mark.parametrize(
    ("text", "groups"),
    [
        ("I've been on hold for two hours and I'm absolutely livid.", {"anger"}),
        ("I am livid.", {"anger"}),
        ("This is outrageous, I was promised a callback yesterday!", {"anger"}),
        ("Great, the app crashed again. Just perfect.", {"anger"}),
        ("Nice job losing my parcel for the second time.", {"anger"}),
        ("Thanks, but it still doesn't work.", {"anger", "sadness"}),
        ("How do I change my delivery address?", {"neutral"}),
        ("请问怎么修改收货地址？", {"neutral"}),
        ("我很担心我的账户被盗了。", {"fear"}),
        ("收到的外卖里有头发，太恶心了。", {"disgust"}),
        ("气炸了，快递又丢了！", {"anger"}),
    ],
)
def test_support_messages_read_as_a_support_agent_would(
    models: dict[str, EmotionModel], text: str, groups: set[str]
) -> None:
    assert _group(models, text) in groups


@pytest.mark.parametrize(
    ("with_data", "without"),
    [
        (
            "I am furious, call me back at +1 415 555 0134 or write to ann@example.com!",
            "I am furious, call me back at or write to !",
        ),
        (
            "I am furious, call me back at [PHONE] or write to [EMAIL]!",
            "I am furious, call me back at or write to !",
        ),
        ("我的邮箱是[EMAIL]，请帮我查一下订单。", "我的邮箱是，请帮我查一下订单。"),
    ],
)
def test_personal_data_and_its_placeholders_do_not_change_the_reading(
    models: dict[str, EmotionModel], with_data: str, without: str
) -> None:
    model = models[detect_language(with_data)]
    (a,), (b,) = model.predict([with_data]), model.predict([without])
    assert a.dominant == b.dominant
    assert a.scores == pytest.approx(b.scores, abs=1e-4)


def test_the_general_domain_keeps_the_models_own_reading() -> None:
    lexicon = LexiconRecognizer()
    general = SupportReader(lexicon, domain="general")
    text = "Great, the app crashed again. Just perfect."
    assert general.predict([text]) == lexicon.predict([text])
    assert general.name == lexicon.name
    (support,) = SupportReader(lexicon).predict([text])
    assert support.model.endswith("+support")
    assert EKMAN_OF[support.dominant] == "anger"


def test_heads_are_shipped_for_the_built_in_models_and_only_for_them(
    models: dict[str, EmotionModel],
) -> None:
    assert set(shipped_heads("lexicon-v1")) == {"zh"}
    assert shipped_heads("some-hub/model") == {}
    assert all(m.name.endswith("+support") for m in models.values())


def test_a_head_round_trips_and_a_broken_one_is_refused(tmp_path: Path) -> None:
    config = HeadConfig(
        language="zh", base_model="m", ngrams=(NGrams("char", 1, 2, 16),), embedding_size=0
    )
    rng = np.random.default_rng(0)
    coef = rng.normal(size=(len(GROUPS), config.size)).astype(np.float32)
    head = SupportHead(config, coef, np.zeros(len(GROUPS), dtype=np.float32))
    head.save(tmp_path / "head")
    loaded = SupportHead.load(tmp_path / "head")
    assert loaded.config == config
    (tmp_path / "head" / "config.json").write_text('{"format": 99}', encoding="utf-8")
    with pytest.raises(ConfigError, match="support head"):
        SupportHead.load(tmp_path / "head")
    with pytest.raises(ConfigError, match="do not fit"):
        SupportHead(config, coef[:, :-1], np.zeros(len(GROUPS), dtype=np.float32))


def test_a_model_of_ones_own_gets_the_cues_but_not_the_shipped_heads(tmp_path: Path) -> None:
    from agent.emotion.catalog import models_for as catalog_models
    from agent.emotion.chinese import DEFAULT_ARTIFACT

    folder = tmp_path / "mine"
    folder.mkdir()
    for file in DEFAULT_ARTIFACT.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    mine = catalog_models(str(folder))["zh"]
    shipped = catalog_models("chinese")["zh"]
    assert isinstance(mine, SupportReader)
    assert isinstance(shipped, SupportReader)
    assert mine.heads == {}
    assert set(shipped.heads) == {"zh"}


def test_every_reading_in_the_support_domain_says_so(models: dict[str, EmotionModel]) -> None:
    texts = ["The meeting is on Tuesday at 3pm in room 4.", "今天天气不错", "气死我了"]
    for text in texts:
        (reading,) = models[detect_language(text)].predict([text])
        assert reading.model.endswith("+support"), text


def test_the_support_mark_is_noted_once_within_a_reading_model_name() -> None:
    assert marked("lexicon-v1") == "lexicon-v1+support"
    assert marked(marked("lexicon-v1")) == "lexicon-v1+support"
    long = marked("m" * 128)
    assert len(long) == 128
    assert long.endswith("+support")
