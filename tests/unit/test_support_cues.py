"""The cues of support messages: what the words say outright, in English and Chinese."""

from __future__ import annotations

import pytest

from agent.emotion.support_cues import find_cues


@pytest.mark.parametrize(
    ("text", "language", "label"),
    [
        ("I've been on hold for two hours and I'm absolutely livid.", "en", "anger"),
        ("This is outrageous, I was promised a callback yesterday!", "en", "anger"),
        ("The room smelled of mould and there was a hair in the sink.", "en", "disgust"),
        ("I'm really worried someone has hacked my account.", "en", "nervousness"),
        ("气炸了，快递又丢了！", "zh", "anger"),
        ("我很担心我的账户被盗了。", "zh", "nervousness"),
        ("收到的外卖里有头发，太恶心了。", "zh", "disgust"),
    ],
)
def test_strong_and_rare_words_are_cued(text: str, language: str, label: str) -> None:
    assert label in find_cues(text, language).labels  # type: ignore[arg-type]


def test_a_negated_cue_is_no_cue() -> None:
    assert "nervousness" not in find_cues("I'm not worried about it at all.", "en").labels
    assert "fear" not in find_cues("我不害怕，就是问问。", "zh").labels


def test_a_polite_word_holding_a_cue_is_no_cue() -> None:
    # 麻烦 ("would you mind") holds 烦 ("annoyed").
    cues = find_cues("我的订单号是12345，麻烦查一下", "zh")
    assert not cues.labels
    assert cues.request


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Great, the app crashed again. Just perfect.", "en"),
        ("Nice job losing my parcel for the second time.", "en"),
        ("真是太棒了，又延误了三个小时。", "zh"),
    ],
)
def test_praise_about_a_bad_event_is_irony(text: str, language: str) -> None:
    assert find_cues(text, language).ironic  # type: ignore[arg-type]


def test_praise_for_a_problem_put_right_is_no_irony() -> None:
    assert not find_cues("Great, it works now after the update, thanks!", "en").ironic


@pytest.mark.parametrize(
    ("text", "language"),
    [("Thanks, but it still doesn't work.", "en"), ("谢谢，但问题还是没解决", "zh")],
)
def test_thanks_then_a_contrast_is_a_complaint(text: str, language: str) -> None:
    assert find_cues(text, language).complains  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "language", "asks"),
    [
        ("How do I change my delivery address?", "en", True),
        ("Please cancel my subscription at the end of the month.", "en", True),
        ("Where is my order?!", "en", False),
        ("WHERE IS MY REFUND, I WANT IT NOW", "en", False),
        ("请问怎么修改收货地址？", "zh", True),
        ("怎么还没到！", "zh", False),
    ],
)
def test_plain_requests_are_told_from_emphatic_ones(text: str, language: str, asks: bool) -> None:
    assert find_cues(text, language).request is asks  # type: ignore[arg-type]
