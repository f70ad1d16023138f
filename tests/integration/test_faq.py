"""FAQ retrieval with the real MiniLM encoder: hits and misses in both languages,
the emotional framing around an answer, delegation to the templates, and bad
knowledge files.

The encoder is loaded and the example knowledge base indexed once per module.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.generation.base import GenerationRequest, Generator, ReplyStream
from agent.generation.faq import FaqGenerator
from agent.generation.faq_index import DEFAULT_THRESHOLDS, FaqIndex, MiniLMEncoder, load_faq
from agent.generation.faq_knowledge import EXAMPLE_KNOWLEDGE, read_knowledge
from agent.generation.template_text import ACTION_TEMPLATES
from agent.generation.templates import TemplateGenerator
from agent.language import Language
from agent.values import Action, Decision, EmotionReading, HistorySummary, Strategy, Tone
from policies.safety import SAFETY_PREFIX


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return MiniLMEncoder.load()


@pytest.fixture(scope="module")
def index(encoder: MiniLMEncoder) -> FaqIndex:
    return FaqIndex.build(EXAMPLE_KNOWLEDGE, encoder)


def _answer(index: FaqIndex, entry_id: str, language: Language) -> str:
    return next(entry.answers[language] for entry in index.entries if entry.id == entry_id)


def _reading(dominant: str) -> EmotionReading:
    return EmotionReading(
        scores={dominant: 0.9, "neutral": 0.1} if dominant != "neutral" else {"neutral": 1.0},
        dominant=dominant, valence=0.0, arousal=0.5, intensity=0.5, model="test",
    )  # fmt: skip


def _request(
    text: str,
    language: Language,
    *,
    dominant: str = "neutral",
    strategy: Strategy = Strategy.INFORM,
    action: Action = Action.REPLY,
    policy: str = "test",
    turn_id: str = "t1",
) -> GenerationRequest:
    return GenerationRequest(
        session_id="s1",
        turn_id=turn_id,
        text=text,
        language=language,
        emotion=_reading(dominant),
        decision=Decision(
            action=action, strategy=strategy, tone=Tone.CALM, confidence=0.9, policy=policy
        ),
        history=HistorySummary.first_time(),
    )


async def _pieces(generator: Generator, request: GenerationRequest) -> list[str]:
    return (await _reply(generator, request))[0]


async def _reply(generator: Generator, request: GenerationRequest) -> tuple[list[str], str]:
    """The reply's pieces and who answered it."""
    async with aclosing(await generator.open(request)) as stream:
        return [piece async for piece in stream], stream.answered_by


# --- The example knowledge base -------------------------------------------------


def test_the_example_knowledge_base_covers_both_languages(index: FaqIndex) -> None:
    assert len(index.entries) >= 20
    for entry in index.entries:
        assert set(entry.questions) == set(entry.answers) == {"en", "zh"}, entry.id
    ids = {entry.id for entry in index.entries}
    assert {"password_reset", "order_tracking", "refund_request", "account_deletion"} <= ids
    # Customers get the in-app steps, never the operator's command.
    assert "heartline" not in _answer(index, "account_deletion", "en")


def test_every_phrasing_of_the_file_finds_its_own_entry(index: FaqIndex) -> None:
    for entry in index.entries:
        for language, phrasings in entry.questions.items():
            for phrasing in phrasings:
                hit = index.lookup(phrasing, language)
                assert hit is not None, phrasing
                assert hit.entry_id == entry.id, phrasing


# --- Hits and misses ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "entry_id"),
    [
        ("I forgot my password, how do I get back in?", "password_reset"),
        ("I can't sign in, I think I forgot my password", "password_reset"),
        ("where's my package? I ordered it last week", "order_tracking"),
        ("I'd like my money back for this order", "refund_request"),
        ("how do I cancel the order I just placed", "cancel_order"),
        ("do you ship to Australia", "international_shipping"),
        ("the checkout says my card was declined", "payment_failed"),
        ("my package was marked delivered but I don't have it", "missing_package"),
    ],
)
def test_english_paraphrases_hit_their_entry(index: FaqIndex, text: str, entry_id: str) -> None:
    hit = index.lookup(text, "en")
    assert hit is not None
    assert hit.entry_id == entry_id
    assert hit.language == "en"
    assert hit.answer == _answer(index, entry_id, "en")
    assert DEFAULT_THRESHOLDS["en"] <= hit.score <= 1.0


@pytest.mark.parametrize(
    ("text", "entry_id"),
    [
        ("我的密码忘了怎么办", "password_reset"),
        ("快递到哪了", "order_tracking"),
        ("查一下我的订单物流", "order_tracking"),
        ("钱什么时候能退回来", "refund_request"),
        ("下错单了怎么取消", "cancel_order"),
        ("地址写错了能改吗", "change_address"),
        ("好担心，显示签收了但我没收到包裹", "missing_package"),
    ],
)
def test_chinese_paraphrases_hit_their_entry(index: FaqIndex, text: str, entry_id: str) -> None:
    hit = index.lookup(text, "zh")
    assert hit is not None
    assert hit.entry_id == entry_id
    assert hit.language == "zh"
    assert hit.answer == _answer(index, entry_id, "zh")
    assert DEFAULT_THRESHOLDS["zh"] <= hit.score <= 1.0


@pytest.mark.parametrize(
    "text",
    [
        "hello",
        "good morning",
        "thanks, bye",
        "I am so angry",
        "I'm really sad today",
        "I'm nervous",
        "what's the weather like tomorrow?",
        "tell me a joke",
        "who won the football game last night",
        "do you have a store in London?",
    ],
)
def test_english_greetings_emotion_and_off_topic_miss(index: FaqIndex, text: str) -> None:
    assert index.lookup(text, "en") is None


@pytest.mark.parametrize(
    "text",
    [
        "你好",
        "在吗",
        "谢谢，再见",
        "我太生气了",
        "我好难过",
        "气死我了",
        "明天天气怎么样",
        "讲个笑话吧",
        "你们招人吗",
        "意大利面怎么做",
    ],
)
def test_chinese_greetings_emotion_and_off_topic_miss(index: FaqIndex, text: str) -> None:
    assert index.lookup(text, "zh") is None


def test_nearest_reports_a_miss_below_the_threshold(index: FaqIndex) -> None:
    nearest = index.nearest("I am so angry", "en")
    assert nearest is not None
    assert nearest.score < DEFAULT_THRESHOLDS["en"]


@pytest.mark.parametrize("text", ["", "   ", "？！", "😡😡"])
def test_text_without_words_never_matches(index: FaqIndex, text: str) -> None:
    assert index.nearest(text, "en") is None
    assert index.nearest(text, "zh") is None


def test_a_language_without_questions_never_matches(tmp_path: Path, encoder: MiniLMEncoder) -> None:
    path = tmp_path / "en_only.yaml"
    path.write_text(
        "version: 1\nentries:\n  - id: hours\n    questions: {en: ['When are you open?']}\n"
        "    answers: {en: Nine to five.}\n",
        encoding="utf-8",
    )
    only_english = FaqIndex.build(path, encoder)
    assert only_english.lookup("when do you open", "en") is not None
    assert only_english.nearest("你们几点开门", "zh") is None


def test_thresholds_are_per_language(encoder: MiniLMEncoder) -> None:
    strict = FaqIndex.build(EXAMPLE_KNOWLEDGE, encoder, thresholds={"en": 0.99, "zh": 0.34})
    assert strict.lookup("I forgot my password, how do I get back in?", "en") is None
    assert strict.lookup("我的密码忘了怎么办", "zh") is not None
    with pytest.raises(ConfigError, match="threshold for zh"):
        FaqIndex.build(EXAMPLE_KNOWLEDGE, encoder, thresholds={"en": 0.5, "zh": 0.0})


async def test_load_faq_runs_in_a_worker_thread(encoder: MiniLMEncoder) -> None:
    loaded = await asyncio.to_thread(load_faq, EXAMPLE_KNOWLEDGE, encoder=encoder)
    hit = loaded.lookup("how do I reset my password", "en")
    assert hit is not None
    assert hit.entry_id == "password_reset"


# --- The generator: framing and delegation --------------------------------------


async def test_an_angry_user_hears_an_apology_then_the_answer(index: FaqIndex) -> None:
    generator = FaqGenerator(index, TemplateGenerator())
    as_generator: Generator = generator  # the seam the turn pipeline streams from
    request = _request(
        "I've been trying for an hour and I'm furious, I forgot my password and can't log in",
        "en",
        dominant="anger",
        strategy=Strategy.APOLOGIZE,
    )
    pieces, answered_by = await _reply(as_generator, request)
    reply = "".join(pieces)
    opener = "I'm sorry this has been frustrating. "
    assert reply == opener + _answer(index, "password_reset", "en")
    # The framing streams first, in pieces of its own.
    assert "".join(pieces[: len(opener.split())]) == opener
    assert answered_by == "faq"


async def test_a_neutral_user_gets_a_plain_answer(index: FaqIndex) -> None:
    generator = FaqGenerator(index, TemplateGenerator())
    request = _request("how can I track my package", "en", strategy=Strategy.INFORM)
    reply = "".join(await _pieces(generator, request))
    assert reply == "Sure. " + _answer(index, "order_tracking", "en")


async def test_a_worried_user_is_reassured_first(index: FaqIndex) -> None:
    generator = FaqGenerator(index, TemplateGenerator())
    request = _request(
        "I'm scared my package got lost", "en", dominant="fear", strategy=Strategy.REASSURE
    )
    reply = "".join(await _pieces(generator, request))
    assert reply == "Don't worry, this is easy to fix. " + _answer(index, "missing_package", "en")


async def test_chinese_framing_wraps_the_chinese_answer(index: FaqIndex) -> None:
    generator = FaqGenerator(index, TemplateGenerator())
    angry = _request(
        "我真的很生气，密码忘了登录不了", "zh", dominant="anger", strategy=Strategy.APOLOGIZE
    )
    reply = "".join(await _pieces(generator, angry))
    assert reply == "很抱歉让你这么烦心。" + _answer(index, "password_reset", "zh")
    neutral = _request("快递到哪了", "zh", turn_id="t2")
    reply = "".join(await _pieces(generator, neutral))
    assert reply == "好的。" + _answer(index, "order_tracking", "zh")


@pytest.mark.parametrize(("text", "language"), [("I am so angry", "en"), ("我太生气了", "zh")])
async def test_a_miss_is_answered_by_the_templates(
    index: FaqIndex, text: str, language: Language
) -> None:
    generator = FaqGenerator(index, TemplateGenerator())
    request = _request(text, language, dominant="anger", strategy=Strategy.DE_ESCALATE)
    pieces, answered_by = await _reply(generator, request)
    assert "".join(pieces) == TemplateGenerator().compose(request)
    assert answered_by == "template"


@pytest.mark.parametrize(
    ("text", "language"), [("how do I reset my password", "en"), ("怎么重置密码", "zh")]
)
async def test_a_handoff_is_always_delegated(
    index: FaqIndex, text: str, language: Language
) -> None:
    generator = FaqGenerator(index, TemplateGenerator())
    request = _request(text, language, action=Action.HANDOFF, strategy=Strategy.DE_ESCALATE)
    pieces, answered_by = await _reply(generator, request)
    assert "".join(pieces) in ACTION_TEMPLATES[(Action.HANDOFF, language)]
    assert answered_by == "template"


async def test_a_safety_decision_is_always_delegated(index: FaqIndex) -> None:
    generator = FaqGenerator(index, TemplateGenerator())
    request = _request(
        "how do I delete my account", "en", policy=f"{SAFETY_PREFIX}self_harm",
        strategy=Strategy.EMPATHIZE,
    )  # fmt: skip
    reply = "".join(await _pieces(generator, request))
    assert reply == TemplateGenerator().compose(request)
    assert reply != _answer(index, "account_deletion", "en")


class _Chain:
    """A wrapped generator that is itself a chain: its replies name who answered."""

    name = "vllm+template"

    async def open(self, request: GenerationRequest) -> ReplyStream:
        return ReplyStream(answered_by="vllm", pieces=self._stream())

    async def _stream(self) -> AsyncGenerator[str, None]:
        yield "from the chain"


async def test_a_miss_is_answered_by_whoever_the_wrapped_chain_says(index: FaqIndex) -> None:
    generator = FaqGenerator(index, _Chain())
    pieces, answered_by = await _reply(generator, _request("tell me a joke", "en"))
    assert ("".join(pieces), answered_by) == ("from the chain", "vllm")
    assert generator.name == "faq"


async def test_concurrent_turns_get_their_own_answers(index: FaqIndex) -> None:
    generator = FaqGenerator(index, TemplateGenerator())
    turns: list[tuple[str, Language, str]] = [
        ("how do I reset my password", "en", "password_reset"),
        ("where is my order", "en", "order_tracking"),
        ("怎么申请退款", "zh", "refund_request"),
        ("怎么取消订单", "zh", "cancel_order"),
    ] * 3
    requests = [
        _request(text, language, turn_id=f"t{i}") for i, (text, language, _) in enumerate(turns)
    ]
    replies = await asyncio.gather(*(_pieces(generator, request) for request in requests))
    for (_, language, entry_id), pieces in zip(turns, replies, strict=True):
        assert "".join(pieces).endswith(_answer(index, entry_id, language))


# --- Bad knowledge files --------------------------------------------------------

_GOOD_ENTRY = """  - id: {id}
    questions:
      en: ['How do I reset my password?']
      zh: [怎么重置密码？]
    answers:
      en: Use the reset link.
      zh: 使用重置链接。
"""


def _write(tmp_path: Path, text: str, name: str = "faq.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_missing_answer_for_a_language_names_the_file_and_the_entry(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "version: 1\nentries:\n  - id: refunds\n    questions:\n      en: ['Refund?']\n"
        "      zh: [退款？]\n    answers:\n      en: Ask for one.\n",
    )
    with pytest.raises(ConfigError, match="no zh answer") as caught:
        read_knowledge(path)
    assert str(path) in str(caught.value)
    assert "'refunds'" in str(caught.value)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "version: 1\nentries:\n" + _GOOD_ENTRY.format(id="reset") + _GOOD_ENTRY.format(id="reset"),
    )
    with pytest.raises(ConfigError, match=r"'reset' \(#2\): duplicate id"):
        read_knowledge(path)


def test_one_question_in_two_entries_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "version: 1\nentries:\n" + _GOOD_ENTRY.format(id="one") + _GOOD_ENTRY.format(id="two"),
    )
    with pytest.raises(ConfigError, match="also a question of entry 'one'"):
        read_knowledge(path)


@pytest.mark.parametrize("text", ["", "version: 1\n", "version: 1\nentries: []\n"])
def test_an_empty_file_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"no entries|expected a mapping"):
        read_knowledge(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 2\nentries: []\n", "write `version: 1`"),
        ("version: 1\nentries: {a: 1}\n", "must be a list"),
        ("version: 1\nentries: [x]\n", "entry #1 must be a mapping"),
        ("version: 1\nentries:\n  - id: Bad Id\n", "lower_snake_case"),
        ("version: 1\nentries:\n  - id: a\n    answer: {en: x}\n", "unknown keys"),
        ("version: 1\nentries:\n  - id: a\n", "no questions"),
        (
            "version: 1\nentries:\n  - id: a\n    questions: {fr: ['Bonjour?']}\n",
            "unsupported languages",
        ),
        (
            "version: 1\nentries:\n  - id: a\n    questions: {en: []}\n    answers: {en: x}\n",
            "non-empty list",
        ),
        (
            "version: 1\nentries:\n  - id: a\n    questions: {en: ['Hi?']}\n"
            "    answers: {en: x, zh: 好}\n",
            "no zh questions",
        ),
        (
            "version: 1\nentries:\n  - id: a\n    questions: {en: ['?']}\n    answers: {en: x}\n",
            "no words",
        ),
        ("version: 1\nentries: [\n", "not valid YAML"),
    ],
)
def test_malformed_files_say_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_knowledge(_write(tmp_path, text))


def test_unreadable_or_unknown_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_knowledge(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml or \.csv"):
        read_knowledge(_write(tmp_path, "{}", name="faq.json"))


# --- CSV ------------------------------------------------------------------------


def test_a_csv_knowledge_file_builds_an_index(tmp_path: Path, encoder: MiniLMEncoder) -> None:
    path = _write(
        tmp_path,
        "id,language,question,answer\n"
        "reset,en,How do I reset my password?,Use the reset link.\n"
        "reset,en,I forgot my password,\n"
        "reset,zh,怎么重置密码？,使用重置链接。\n"
        'hours,en,"When are you open, and on which days?",Nine to five on weekdays.\n'
        "hours,zh,你们几点营业？,工作日九点到五点。\n",
        name="faq.csv",
    )
    entries = read_knowledge(path)
    assert [entry.id for entry in entries] == ["reset", "hours"]
    assert entries[0].questions["en"] == ("How do I reset my password?", "I forgot my password")
    csv_index = FaqIndex.build(path, encoder)
    hit = csv_index.lookup("I can't remember my password", "en")
    assert hit is not None
    assert hit.answer == "Use the reset link."
    zh_hit = csv_index.lookup("几点营业", "zh")
    assert zh_hit is not None
    assert zh_hit.answer == "工作日九点到五点。"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,question,answer\nx,Hi?,Hello.\n", "header must be exactly"),
        ("id,language,question,answer\nx,en,Hi?\n", "line 2: expected 4 columns"),
        (
            "id,language,question,answer\nx,en,Hi?,Hello.\nx,en,Hey?,Howdy.\n",
            "two different en answers",
        ),
        ("id,language,question,answer\nx,en,Hi?,\n", "no en answer"),
    ],
)
def test_malformed_csv_files_say_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_knowledge(_write(tmp_path, text, name="faq.csv"))
