"""The output guard: redaction and blocklist on a stream, word by word or sentence by sentence.

The sans-I/O parts (`SentenceSplitter`, `ReplyFilter`) are tested without an event loop;
the async wrapper for streaming, closing and cancellation.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.generation.guard import (
    DEFAULT_REPLACEMENTS,
    OutputGuard,
    Segment,
    SentenceSplitter,
)
from agent.language import Language
from agent.privacy.redaction import find_pii, redact
from tests.support.pii import FILLER, LEFT, PII, RIGHT

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EN = DEFAULT_REPLACEMENTS["en"]
ZH = DEFAULT_REPLACEMENTS["zh"]


def _filter(guard: OutputGuard, chunks: Iterable[str], language: Language = "en") -> str:
    reply = guard.filter(language)
    return "".join(reply.feed(chunk) for chunk in chunks) + reply.finish()


async def _upstream(chunks: Iterable[str]) -> AsyncIterator[str]:
    for chunk in chunks:
        yield chunk


async def _guarded(guard: OutputGuard, chunks: Iterable[str], language: Language = "en") -> str:
    async with aclosing(guard.guard(_upstream(chunks), language)) as stream:
        return "".join([piece async for piece in stream])


def _segments(splitter: SentenceSplitter, chunks: Iterable[str]) -> list[Segment]:
    segments = [segment for chunk in chunks for segment in splitter.feed(chunk)]
    tail = splitter.flush()
    return [*segments, tail] if tail is not None else segments


# Redaction across chunks


async def test_an_email_split_across_chunks_is_redacted() -> None:
    chunks = ["Write to jo", "hn.d", "oe@exa", "mple.c", "om now. By", "e."]
    assert await _guarded(OutputGuard(), chunks) == "Write to [EMAIL] now. Bye."


async def test_a_chinese_phone_split_across_chunks_is_redacted() -> None:
    chunks = ["请拨打+86 13", "8 1234 5", "678。", "谢谢！"]
    assert await _guarded(OutputGuard(), chunks, "zh") == "请拨打[PHONE]。谢谢！"


def test_sentence_ends_inside_addresses_and_numbers_are_not_sentence_ends() -> None:
    text = "Pi is 3.14 and v1.2 is out. Mail john.doe@example.com or call 415.555.0132. Ok"
    segments = _segments(SentenceSplitter(), [text])
    assert [segment.text for segment in segments] == [
        "Pi is 3.14 and v1.2 is out.",
        " Mail john.doe@example.com or call 415.555.0132.",
        " Ok",
    ]
    assert _filter(OutputGuard(), text) == redact(text)


# Word by word (the default)


def test_words_go_as_soon_as_nothing_can_change_them() -> None:
    reply = OutputGuard().filter("en")
    assert reply.feed("Hello there, how") == "Hello there, "
    assert reply.feed(" are you") == "how are "
    assert reply.feed("?") == ""  # "you?" may be the start of an address
    assert reply.feed(" Fine") == "you? "
    assert reply.finish() == "Fine"


def test_a_number_is_held_until_it_cannot_grow_into_personal_data() -> None:
    reply = OutputGuard().filter("en")
    assert reply.feed("Call me at +1 415") == "Call me at "
    assert reply.feed(" 555 0132") == ""
    assert reply.feed(" to") == ""  # "to…" might still be part of it ("0132 T0…")
    assert reply.feed("day ") == "[PHONE] today "
    assert reply.finish() == ""


def test_an_iban_with_a_group_of_letters_is_held_whole() -> None:
    chunks = ["My IBAN is GB82 ", "WEST ", "1234 5698 ", "7654 32 ", "thanks"]
    assert _filter(OutputGuard(), chunks) == "My IBAN is [IBAN] thanks"


def test_chinese_goes_character_by_character_but_a_number_whole() -> None:
    reply = OutputGuard().filter("zh")
    assert reply.feed("我的电话是1380013") == "我的电话是"
    assert reply.feed("8000，谢谢") == "[PHONE]，谢谢"


def test_the_start_of_a_blocklisted_phrase_is_held() -> None:
    reply = OutputGuard(blocklist=["shut up"]).filter("en")
    assert reply.feed("Please shut") == "Please "
    assert reply.feed(" the door.") == "shut the "
    assert reply.feed(" Shut   up now. Ok.") == f"door. {EN} "
    assert reply.finish() == "Ok."


def test_a_blocklisted_phrase_replaces_the_rest_of_its_sentence() -> None:
    guard = OutputGuard(blocklist=["stupid"])
    text = "Thanks for waiting. That was a Stupid question! Here is the answer."
    assert _filter(guard, list(text)) == f"Thanks for waiting. That was a {EN} Here is the answer."


async def test_the_first_words_arrive_before_the_sentence_ends() -> None:
    never = asyncio.Event()

    async def upstream() -> AsyncIterator[str]:
        yield "Hello"
        yield " there, how"
        await never.wait()

    async with aclosing(OutputGuard().guard(upstream(), "en")) as stream:
        async with asyncio.timeout(1):
            assert await anext(stream) == "Hello there, "


# Blocklist


def test_a_blocklisted_sentence_is_replaced_and_the_rest_kept() -> None:
    guard = OutputGuard(blocklist=["stupid"], release="sentence")
    text = "Thanks for waiting. That was a Stupid question! Here is the answer."
    expected = f"Thanks for waiting. {EN} Here is the answer."
    assert _filter(guard, text) == expected
    assert _filter(guard, list(text)) == expected


def test_a_chinese_blocklisted_sentence_gets_a_chinese_replacement() -> None:
    guard = OutputGuard(blocklist=["很傻"], release="sentence")
    assert (
        _filter(guard, ["你好。这个问", "题很", "傻。我们继续吧。"], "zh")
        == f"你好。{ZH}我们继续吧。"
    )


@pytest.mark.parametrize(
    ("text", "blocked"),
    [
        ("You are an idiot.", True),
        ("You are an IDIOT.", True),
        ("You are an ＩＤＩＯＴ.", True),  # full-width letters
        ("Idiots everywhere.", False),  # whole words only
        ("Please shut   up now.", True),  # any whitespace between words
        ("Please shut-up now.", False),
        ("我觉得你是个笨蛋吧。", True),  # Chinese matches anywhere
        ("A fine class.", False),
    ],
)
def test_blocklist_matching(text: str, blocked: bool) -> None:
    guard = OutputGuard(blocklist=["idiot", "shut up", "笨蛋"])
    assert guard.is_blocked(text) is blocked
    assert (guard.check_sentence(text, "en") == EN) is blocked


def test_compiled_patterns_are_used_as_given() -> None:
    guard = OutputGuard(
        blocklist=[re.compile(r"\bpromo code \w+", re.IGNORECASE)], release="sentence"
    )
    assert guard.check_sentence(" Use PROMO CODE X1!", "en") == f" {EN}"


def test_replaced_sentences_in_a_row_become_one_replacement() -> None:
    guard = OutputGuard(blocklist=["darn"], release="sentence")
    text = "Darn it. Darn again! Darn, darn. Anyway, here we go."
    assert _filter(guard, text) == f"{EN} Anyway, here we go."


def test_the_rest_of_a_blocked_sentence_cut_by_max_hold_is_replaced_too() -> None:
    guard = OutputGuard(blocklist=["darn"], max_hold=40)
    text = "darn " + "word " * 30 + "end. Next one."
    assert _filter(guard, list(text)) == f"{EN} Next one."


def test_custom_replacements() -> None:
    guard = OutputGuard(
        blocklist=["darn"], replacements={"en": "(removed)", "zh": "（已删除）"}, release="sentence"
    )
    assert _filter(guard, "Oh darn. Fine.") == "(removed) Fine."
    assert _filter(guard, "darn。好的。", "zh") == "（已删除）好的。"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"blocklist": ["ok", "  "]},
        {"replacements": {"en": "Removed."}},
        {"replacements": {"en": "Removed.", "zh": ""}},
        {"max_hold": 4},
        {"blocklist": [re.compile("x")]},  # a pattern cannot be matched word by word
        {"release": "paragraph"},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        OutputGuard(**kwargs)  # type: ignore[arg-type]


# Streaming


async def test_clean_text_passes_unchanged() -> None:
    text = "Hello! I'm here to help.\nWhat happened? 我们一起看看。好吗？Let's fix it"
    chunks = [text[i : i + 3] for i in range(0, len(text), 3)]
    assert await _guarded(OutputGuard(blocklist=["darn"]), chunks) == text


async def test_the_first_sentence_arrives_before_the_upstream_finishes() -> None:
    never = asyncio.Event()

    async def upstream() -> AsyncIterator[str]:
        yield "Hello there."
        yield " How"
        await never.wait()
        yield " are you?"

    async with aclosing(OutputGuard(release="sentence").guard(upstream(), "en")) as stream:
        async with asyncio.timeout(1):
            assert await anext(stream) == "Hello there."


async def test_a_chinese_sentence_goes_at_its_full_stop() -> None:
    never = asyncio.Event()

    async def upstream() -> AsyncIterator[str]:
        yield "你好"
        yield "。今天"
        await never.wait()

    async with aclosing(OutputGuard(release="sentence").guard(upstream(), "zh")) as stream:
        async with asyncio.timeout(1):
            assert await anext(stream) == "你好。"


async def test_a_sentence_without_punctuation_still_flows() -> None:
    never = asyncio.Event()
    text = "and then we keep going without any stop at all " * 10

    async def upstream() -> AsyncIterator[str]:
        for i in range(0, len(text), 7):
            yield text[i : i + 7]
        await never.wait()

    async with aclosing(OutputGuard(max_hold=200).guard(upstream(), "en")) as stream:
        async with asyncio.timeout(1):
            first = await anext(stream)
    assert 0 < len(first) <= 200
    assert text.startswith(first)


def test_max_hold_bounds_what_is_held() -> None:
    splitter = SentenceSplitter(max_hold=50, keep=10)
    text = "我们一起慢慢来不要着急" * 20 + " and some words without any end " * 5
    segments: list[Segment] = []
    for char in text:
        segments += splitter.feed(char)
        assert len(splitter.held) <= 50
    assert all(len(segment.text) <= 41 and not segment.ends_sentence for segment in segments)
    assert "".join(segment.text for segment in segments) + splitter.held == text


def test_a_max_hold_cut_never_splits_an_address() -> None:
    guard = OutputGuard(max_hold=100)
    for offset in range(0, 60, 3):
        text = "x" * offset + " " + "a " * 20 + "mail first.last@example.org then " + "b " * 40
        assert _filter(guard, list(text)) == redact(text)


async def test_closing_the_guard_closes_the_upstream() -> None:
    closed = asyncio.Event()

    async def upstream() -> AsyncIterator[str]:
        try:
            yield "One. "
            yield "Two. "
            await asyncio.Event().wait()
        finally:
            closed.set()

    stream = OutputGuard().guard(upstream(), "en")
    assert await anext(stream) == "One. "
    await stream.aclose()
    assert closed.is_set()


async def test_cancelling_the_consumer_closes_the_upstream() -> None:
    closed = asyncio.Event()
    started = asyncio.Event()

    async def upstream() -> AsyncIterator[str]:
        try:
            yield "One. "
            started.set()
            await asyncio.Event().wait()
            yield "never"
        finally:
            closed.set()

    async def consume() -> list[str]:
        async with aclosing(OutputGuard().guard(upstream(), "en")) as stream:
            return [piece async for piece in stream]

    task = asyncio.create_task(consume())
    async with asyncio.timeout(1):
        await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed.is_set()


async def test_an_upstream_error_propagates() -> None:
    async def upstream() -> AsyncIterator[str]:
        yield "Fine so far. "
        raise RuntimeError("model died")

    pieces: list[str] = []

    async def consume() -> None:
        async with aclosing(OutputGuard().guard(upstream(), "en")) as stream:
            async for piece in stream:
                pieces.append(piece)

    with pytest.raises(RuntimeError, match="model died"):
        await consume()
    assert pieces == ["Fine so far. "]


# Properties

_ALPHABET = list("ab Xy.!?\n\t,:@1234567890'\")") + list("。！？，你好＠ａ１") + ["darn", "坏"]
_noisy = st.lists(st.sampled_from(_ALPHABET), max_size=300).map("".join)
_CLEAN = list("abcXYZ ,;'-()\n\t.!?") + list("。！？，你好我们")
_WORDS = ["hello", "we", "can", "fix", "this", "today", "你好", "我们", "now", "Order", "ok"]


@st.composite
def _chunked(draw: st.DrawFn, texts: st.SearchStrategy[str]) -> tuple[str, list[str]]:
    text = draw(texts)
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=30)))
    return text, [text[a:b] for a, b in itertools.pairwise([0, *cuts, len(text)])]


_pii = st.one_of(
    st.builds(
        "{}{}@{}.{}".format,
        st.sampled_from(["john", "li.wei", "a.b.c", "x"]),
        st.integers(0, 999),
        st.sampled_from(["example", "mail-box", "qq", "sub.site"]),
        st.sampled_from(["com", "org", "cn", "co"]),
    ),
    st.builds("1{}{:09d}".format, st.integers(3, 9), st.integers(0, 10**9 - 1)),
    st.integers(0, 99).map("(415) 555-01{:02d}".format),
    st.builds("192.168.{}.{}".format, st.integers(10, 99), st.integers(10, 99)),
)
_sentence = st.builds(
    lambda tokens, end: " ".join(tokens) + end,
    st.lists(st.one_of(st.sampled_from(_WORDS), _pii), min_size=1, max_size=45),
    st.sampled_from([".", "!", "?", "。", "！", "？", ""]),
)
_text_with_pii = st.builds(
    lambda sentences, sep: sep.join(sentences),
    st.lists(_sentence, max_size=6),
    st.sampled_from([" ", "\n", "  "]),
)


@PROPERTY
@given(
    _chunked(_noisy),
    st.sampled_from([24, 60, 200]),
)
def test_output_does_not_depend_on_chunking(chunked: tuple[str, list[str]], hold: int) -> None:
    text, chunks = chunked
    guard = OutputGuard(blocklist=["darn", "坏"], max_hold=hold, release="sentence")
    whole = _filter(guard, [text])
    assert _filter(guard, chunks) == whole
    assert _filter(guard, list(text)) == whole
    segments = _segments(guard.splitter(), chunks)
    assert segments == _segments(guard.splitter(), [text])
    assert "".join(segment.text for segment in segments) == text
    assert all(len(segment.text) <= hold + 1 for segment in segments)


@PROPERTY
@given(_chunked(_noisy))
def test_without_a_blocklist_the_output_is_each_segment_redacted(
    chunked: tuple[str, list[str]],
) -> None:
    text, chunks = chunked
    guard = OutputGuard()
    expected = "".join(
        guard.check_sentence(s.text, "en") for s in _segments(guard.splitter(), [text])
    )
    assert _filter(guard, chunks) == expected


@PROPERTY
@given(_chunked(st.text(alphabet=st.sampled_from(_CLEAN), max_size=400)))
def test_clean_text_comes_out_as_it_went_in(chunked: tuple[str, list[str]]) -> None:
    text, chunks = chunked
    assert _filter(OutputGuard(blocklist=["darn"], max_hold=30), chunks) == text


@PROPERTY
@given(_chunked(_text_with_pii))
def test_personal_data_is_redacted_as_in_the_whole_text(chunked: tuple[str, list[str]]) -> None:
    text, chunks = chunked
    output = _filter(OutputGuard(), chunks)
    assert output == redact(text)
    assert find_pii(output) == []


_pii_in_text = st.builds(
    lambda before, left, pii, right, after: f"{before} {left}{pii[0]}{right} {after}",
    FILLER,
    LEFT,
    st.one_of(*PII.values()),
    RIGHT,
    FILLER,
)


@PROPERTY
@given(_chunked(st.lists(_pii_in_text, min_size=1, max_size=3).map(" ".join)))
def test_word_by_word_every_kind_of_personal_data_is_redacted_as_in_the_whole_text(
    chunked: tuple[str, list[str]],
) -> None:
    text, chunks = chunked
    output = _filter(OutputGuard(), chunks)
    assert output == redact(text)
    assert _filter(OutputGuard(), list(text)) == output


@PROPERTY
@given(_chunked(_noisy))
def test_word_by_word_no_blocklisted_phrase_gets_through(chunked: tuple[str, list[str]]) -> None:
    text, chunks = chunked
    guard = OutputGuard(blocklist=["darn", "坏", "ab  xy"])
    output = _filter(guard, chunks)
    assert not guard.is_blocked(output.replace(EN, " "))
    segments = _segments(guard.splitter(), chunks)
    assert "".join(segment.text for segment in segments) == text
