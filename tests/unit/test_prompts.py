"""The prompt builder: instructions per decision, the token budget, the system prompt file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.generation.base import GenerationRequest
from agent.generation.prompts import (
    DEFAULT_SYSTEM_PROMPT,
    STRATEGY_INSTRUCTIONS,
    TONE_INSTRUCTIONS,
    TRUNCATION_MARKER,
    PromptBuilder,
    PromptSettings,
    approx_tokens,
)
from agent.language import Language
from agent.values import (
    Action,
    Decision,
    EmotionReading,
    Exchange,
    HistorySummary,
    SessionMood,
    Strategy,
    Tone,
)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _reading(
    label: str = "annoyance", *, valence: float = -0.5, intensity: float = 0.7
) -> EmotionReading:
    return EmotionReading(
        scores={label: 0.8, "neutral": 0.2} if label != "neutral" else {"neutral": 1.0},
        dominant=label,
        valence=valence,
        arousal=0.5,
        intensity=intensity,
        model="test",
    )


def _request(
    text: str = "Where is my order?",
    *,
    language: Language = "en",
    strategy: Strategy = Strategy.APOLOGIZE,
    tone: Tone = Tone.CALM,
    action: Action = Action.REPLY,
    conversation: tuple[Exchange, ...] = (),
    history: HistorySummary | None = None,
    emotion: EmotionReading | None = None,
) -> GenerationRequest:
    return GenerationRequest(
        session_id="s",
        turn_id="t",
        text=text,
        language=language,
        emotion=emotion or _reading(),
        decision=Decision(action=action, strategy=strategy, tone=tone, confidence=0.9, policy="p"),
        history=history or HistorySummary.first_time(),
        conversation=conversation,
    )


def _exchanges(count: int, *, words: int = 40, label: str = "annoyance") -> tuple[Exchange, ...]:
    return tuple(
        Exchange(
            text=f"question {i} " + "blah " * words,
            reply=f"answer {i} " + "sure " * words,
            emotion=_reading(label),
            strategy=Strategy.INFORM,
        )
        for i in range(count)
    )


def _system(messages: list[dict[str, str]]) -> str:
    assert messages[0]["role"] == "system"
    return messages[0]["content"]


# Shape


def test_messages_are_system_then_the_exchanges_then_the_current_message() -> None:
    conversation = _exchanges(2, words=3)
    messages = PromptBuilder().messages(_request(conversation=conversation))
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert messages[1]["content"] == conversation[0].text
    assert messages[4]["content"] == conversation[1].reply
    assert messages[-1] == {"role": "user", "content": "Where is my order?"}
    assert "Earlier in this conversation" not in _system(messages)


def test_the_system_message_starts_with_the_shipped_system_prompt() -> None:
    builder = PromptBuilder(PromptSettings(persona_name="Mia"))
    system = _system(builder.messages(_request()))
    assert system.startswith(builder.system_prompt)
    assert builder.system_prompt.startswith("You are Mia,")
    assert "{persona}" not in system
    assert "请用简体中文" in DEFAULT_SYSTEM_PROMPT.read_text(encoding="utf-8")


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("language", ["en", "zh"])
def test_every_strategy_has_an_instruction_in_both_languages(
    strategy: Strategy, language: Language
) -> None:
    instruction = STRATEGY_INSTRUCTIONS[(strategy, language)]
    system = _system(PromptBuilder().messages(_request(language=language, strategy=strategy)))
    assert instruction in system
    if language == "zh":
        assert any("\u4e00" <= char <= "\u9fff" for char in instruction)


def test_strategy_instructions_are_distinct() -> None:
    for language in ("en", "zh"):
        texts = {STRATEGY_INSTRUCTIONS[(strategy, language)] for strategy in Strategy}
        assert len(texts) == len(Strategy)
    assert "apologising" in STRATEGY_INSTRUCTIONS[(Strategy.APOLOGIZE, "en")]


@pytest.mark.parametrize("tone", list(Tone))
@pytest.mark.parametrize("language", ["en", "zh"])
def test_every_tone_has_an_instruction(tone: Tone, language: Language) -> None:
    system = _system(PromptBuilder().messages(_request(language=language, tone=tone)))
    assert TONE_INSTRUCTIONS[(tone, language)] in system


def test_the_emotion_and_history_are_described() -> None:
    history = HistorySummary(
        returning=True,
        sessions=3,
        turns=12,
        mean_valence=-0.3,
        past_sessions=(SessionMood(turns=4, mood="anger", mean_valence=-0.5, ended_at=1.0),),
    )
    request = _request(history=history, emotion=_reading("anger", valence=-0.8, intensity=0.9))
    system = _system(PromptBuilder().messages(request))
    assert "main emotion: anger; intensity high, valence negative" in system
    assert history.describe() in system
    assert "Reply in English." in system


def test_intensity_and_valence_bands() -> None:
    calm = _request(emotion=_reading("joy", valence=0.6, intensity=0.1))
    assert "joy; intensity low, valence positive" in _system(PromptBuilder().messages(calm))
    middle = _request(emotion=_reading("confusion", valence=0.0, intensity=0.5))
    assert "confusion (surprise); intensity moderate, valence neutral" in _system(
        PromptBuilder().messages(middle)
    )


def test_a_chinese_request_gets_chinese_instructions() -> None:
    request = _request("我的订单在哪里？", language="zh", emotion=_reading("anger", valence=-0.8))
    system = _system(PromptBuilder().messages(request))
    assert "请用简体中文回答。" in system
    assert "Reply in English" not in system
    assert STRATEGY_INSTRUCTIONS[(Strategy.APOLOGIZE, "zh")] in system
    assert "用户的主要情绪：生气；强度高，负面" in system


def test_a_handoff_says_a_colleague_takes_over() -> None:
    system = _system(PromptBuilder().messages(_request(action=Action.HANDOFF)))
    assert "human colleague will take over" in system


# Budget


def test_the_oldest_exchanges_go_first_and_are_summarised() -> None:
    conversation = _exchanges(10)
    builder = PromptBuilder(PromptSettings(max_prompt_tokens=1000, reply_tokens=200))
    messages = builder.messages(_request(conversation=conversation))
    assert builder.count(messages) <= 800
    kept = (len(messages) - 2) // 2
    assert 0 < kept < 10
    assert [m["content"] for m in messages[1:-1:2]] == [e.text for e in conversation[10 - kept :]]
    assert (
        f"Earlier in this conversation: {10 - kept} exchanges, not shown; "
        "the user mostly felt annoyance (anger)."
    ) in _system(messages)
    # One more exchange would not have fitted.
    roomier = PromptBuilder(PromptSettings(max_prompt_tokens=1000 + 130, reply_tokens=200))
    assert (len(roomier.messages(_request(conversation=conversation))) - 2) // 2 > kept


def test_the_summary_is_in_the_turn_language() -> None:
    conversation = _exchanges(10, label="sadness")
    builder = PromptBuilder(PromptSettings(max_prompt_tokens=1000, reply_tokens=200))
    messages = builder.messages(_request("好的", language="zh", conversation=conversation))
    dropped = 10 - (len(messages) - 2) // 2
    assert f"此前的对话：{dropped}轮，未显示；用户主要感到难过。" in _system(messages)


def test_a_current_message_too_long_alone_is_cut_in_the_middle() -> None:
    text = "START " + "word " * 5000 + "END"
    builder = PromptBuilder(PromptSettings(max_prompt_tokens=1500))
    messages = builder.messages(_request(text, conversation=_exchanges(3)))
    assert len(messages) == 2
    current = messages[-1]["content"]
    assert current.startswith("START ")
    assert current.endswith(" END")
    assert TRUNCATION_MARKER in current
    assert builder.count(messages) <= builder.settings.prompt_budget
    # It takes all the room the system message leaves.
    assert builder.count(messages) > builder.settings.prompt_budget - 2


def test_a_budget_too_small_for_the_system_prompt_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_prompt_tokens"):
        PromptBuilder(PromptSettings(max_prompt_tokens=300, reply_tokens=256))


def test_a_budget_too_small_for_the_turn_is_a_config_error(tmp_path: Path) -> None:
    prompt = tmp_path / "system.md"
    prompt.write_text("Be kind.", encoding="utf-8")
    builder = PromptBuilder(PromptSettings(system_prompt=prompt, max_prompt_tokens=300))
    with pytest.raises(ConfigError, match="raise max_prompt_tokens"):
        builder.messages(_request())


@pytest.mark.parametrize(
    "kwargs", [{"max_prompt_tokens": 256}, {"reply_tokens": 0}, {"persona_name": " "}]
)
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        PromptSettings(**kwargs)  # type: ignore[arg-type]


_TEXT = st.lists(
    st.sampled_from(["hello", " ", "order", "你", "好", "。", "\n", "broken", "12", "!", "?"]),
    max_size=120,
).map("".join)
_LABELS = st.sampled_from(["anger", "joy", "neutral", "sadness", "fear"])


@PROPERTY
@given(
    exchanges=st.lists(st.tuples(_TEXT, _TEXT, st.none() | _LABELS), max_size=15),
    current=st.one_of(_TEXT, st.text(max_size=12_000)),
    max_prompt_tokens=st.integers(650, 3000),
    language=st.sampled_from(["en", "zh"]),
    count=st.sampled_from([approx_tokens, len, lambda text: len(text.split())]),
)
def test_the_prompt_always_fits_the_budget(
    exchanges: list[tuple[str, str, str | None]],
    current: str,
    max_prompt_tokens: int,
    language: Language,
    count: Callable[[str], int],
) -> None:
    if count is len:
        max_prompt_tokens *= 4
    conversation = tuple(
        Exchange(text=text, reply=reply, emotion=_reading(label) if label else None)
        for text, reply, label in exchanges
    )
    builder = PromptBuilder(PromptSettings(max_prompt_tokens=max_prompt_tokens), count)
    messages = builder.messages(_request(current, language=language, conversation=conversation))

    assert builder.count(messages) <= builder.settings.prompt_budget
    assert _system(messages).startswith(builder.system_prompt)
    assert messages[-1]["role"] == "user"
    sent = messages[-1]["content"]
    if sent != current:
        head, _, tail = sent.partition(TRUNCATION_MARKER)
        assert current.startswith(head)
        assert current.endswith(tail)
        assert len(messages) == 2
    # What is kept is the newest exchanges, in order, user and assistant alternating.
    kept = (len(messages) - 2) // 2
    assert len(messages) == 2 * kept + 2
    expected = [
        message
        for exchange in conversation[len(conversation) - kept :]
        for message in (
            {"role": "user", "content": exchange.text},
            {"role": "assistant", "content": exchange.reply},
        )
    ]
    assert messages[1:-1] == expected
    # Nothing is dropped when everything fits.
    everything = [messages[0], *_all_messages(conversation), messages[-1]]
    if sent == current and builder.count(everything) <= builder.settings.prompt_budget:
        assert kept == len(conversation)


def _all_messages(conversation: tuple[Exchange, ...]) -> list[dict[str, str]]:
    return [
        message
        for exchange in conversation
        for message in (
            {"role": "user", "content": exchange.text},
            {"role": "assistant", "content": exchange.reply},
        )
    ]


def test_a_real_tokenizer_count_is_used() -> None:
    calls: list[str] = []

    def count(text: str) -> int:
        calls.append(text)
        return len(text.split())

    builder = PromptBuilder(PromptSettings(max_prompt_tokens=2000), count)
    messages = builder.messages(_request(conversation=_exchanges(2, words=3)))
    assert calls
    assert builder.count(messages) == sum(len(m["content"].split()) + 4 for m in messages)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("", 0), ("abcd", 1), ("abcde", 2), ("你好", 2), ("你好，world!", 3 + 2), ("ＡＢ", 2)],
)
def test_approx_tokens(text: str, tokens: int) -> None:
    assert approx_tokens(text) == tokens


# The system prompt file


def test_a_custom_system_prompt_file_is_used(tmp_path: Path) -> None:
    prompt = tmp_path / "pirate.md"
    prompt.write_text("You are {persona}, a friendly pirate.\n\n", encoding="utf-8")
    builder = PromptBuilder(PromptSettings(system_prompt=prompt, persona_name="Polly"))
    system = _system(builder.messages(_request()))
    assert system.startswith("You are Polly, a friendly pirate.\n\n## How to answer this turn")
    assert "Heartline" not in system


def test_comments_in_the_system_prompt_file_never_reach_the_model(tmp_path: Path) -> None:
    prompt = tmp_path / "persona.md"
    prompt.write_text(
        "<!--\nNotes for editors.\n-->\n\nYou are {persona}.<!-- inline -->\nBe brief.\n",
        encoding="utf-8",
    )
    builder = PromptBuilder(PromptSettings(system_prompt=prompt, persona_name="Polly"))
    assert builder.system_prompt == "You are Polly.\nBe brief."
    only_notes = tmp_path / "notes.md"
    only_notes.write_text("<!-- nothing but notes -->\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is empty"):
        PromptBuilder(PromptSettings(system_prompt=only_notes))


def test_a_missing_system_prompt_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "system.md"
    with pytest.raises(ConfigError, match="system prompt file") as info:
        PromptBuilder(PromptSettings(system_prompt=missing))
    assert str(missing) in str(info.value)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "is empty"), (b"  \n", "is empty"), (b"\xff\xfe bad", "UTF-8"), (None, "system.md")],
)
def test_an_unusable_system_prompt_file_is_a_config_error(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "system.md"
    if content is None:
        path.mkdir()  # a directory, not a file
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=reason):
        PromptBuilder(PromptSettings(system_prompt=path))
