"""PII redaction: examples per kind, generated PII that must not survive, look-alikes that stay.

The strategies build valid checksums themselves (Luhn, ISO 13616 mod 97, GB 11643) rather
than borrow the module's validators, so a wrong validator cannot agree with itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.privacy.redaction import (
    PiiKind,
    PiiMatch,
    Redaction,
    find_pii,
    redact,
    redact_with_report,
)
from tests.support.pii import FILLER, LEFT, PII, RIGHT, TOKENS, no_separators

LOOKALIKES = Path(__file__).parent / "data" / "redaction_lookalikes.txt"
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Examples


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Email
        ("Write to john.doe+work@example.co.uk today.", "Write to [EMAIL] today."),
        ("我的邮箱是zhangsan@qq.com谢谢", "我的邮箱是[EMAIL]谢谢"),
        ("邮箱：13812345678@163.com。", "邮箱：[EMAIL]。"),
        ("ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ", "[EMAIL]"),
        ("user=john@x.com", "[EMAIL]"),
        # Phone
        ("Call me at (415) 555-0132 tonight", "Call me at [PHONE] tonight"),
        ("Call 1-415-555-0132 or 415.555.0199.", "Call [PHONE] or [PHONE]."),
        ("UK: +44 (0)20 7946 0958", "UK: [PHONE]"),
        ("Paris +33 6 12 34 56 78, 2024", "Paris [PHONE], 2024"),
        ("Text me on 07700 900123 or 07700900456.", "Text me on [PHONE] or [PHONE]."),
        ("Office 020 7946 0321, Manchester 0161 496 0123", "Office [PHONE], Manchester [PHONE]"),
        ("Berlin 030 12345678, mobil 0151-23456789", "Berlin [PHONE], mobil [PHONE]"),
        ("我的手机号是13812345678谢谢", "我的手机号是[PHONE]谢谢"),
        ("手机：+86 138 1234 5678，微信同号", "手机：[PHONE]，微信同号"),
        ("电话0086-139-8765-4321", "电话[PHONE]"),
        ("(+86)13812345678", "([PHONE]"),
        ("座机010-62345678转人工，或(0755)86013388", "座机[PHONE]转人工，或[PHONE]"),
        ("手机１３８１２３４５６７８", "手机[PHONE]"),
        ("13812345678,13987654321", "[PHONE],[PHONE]"),
        # Card
        ("My card is 4111 1111 1111 1111, exp 12/27", "My card is [CARD], exp 12/27"),
        ("Amex 3782-822463-10005 ok", "Amex [CARD] ok"),
        ("卡号6222021234567890128请查收", "卡号[CARD]请查收"),
        ("card 5500 0000 0000 0004 123", "card [CARD] 123"),
        ("2024 4111 1111 1111 1111 12", "2024 [CARD] 12"),
        # IBAN
        ("IBAN: DE89 3704 0044 0532 0130 00.", "IBAN: [IBAN]."),
        ("pay to GB82WEST12345698765432 by Friday", "pay to [IBAN] by Friday"),
        ("账户fr1420041010050500013m02606谢谢", "账户[IBAN]谢谢"),
        # Chinese resident ID
        ("身份证号11010519491231002X。", "身份证号[CN_ID]。"),
        ("ID: 110105 19491231 002x", "ID: [CN_ID]"),
        ("我的身份证是44030419900307123X，别外传", "我的身份证是[CN_ID]，别外传"),
        # IP
        ("server 192.168.1.1:8080 is down", "server [IP]:8080 is down"),
        ("我的IP是10.0.0.255，帮我查一下", "我的IP是[IP]，帮我查一下"),
        ("range 10.0.0.1-10.0.0.255", "range [IP]-[IP]"),
        ("a bare 1.2.3.40 counts as an address", "a bare [IP] counts as an address"),
        ("IPv6 [2001:db8::8a2e:370:7334]:443", "IPv6 [[IP]]:443"),
        ("IP:fe80::1: up", "IP:[IP]: up"),
        ("mapped ::ffff:192.0.2.128.", "mapped [IP]."),
    ],
)
def test_redacts_examples(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_placeholders_are_the_kind_names_in_brackets() -> None:
    assert [kind.placeholder for kind in PiiKind] == [
        "[EMAIL]",
        "[PHONE]",
        "[CARD]",
        "[IBAN]",
        "[CN_ID]",
        "[IP]",
    ]


def test_report_counts_each_kind() -> None:
    report = redact_with_report("a@b.com, c@d.org, 13812345678 and 10.0.0.1")
    assert report == Redaction(text="[EMAIL], [EMAIL], [PHONE] and [IP]", counts=report.counts)
    assert report.counts == {PiiKind.EMAIL: 2, PiiKind.PHONE: 1, PiiKind.IP: 1}
    assert report.total == 4


def test_clean_text_reports_nothing() -> None:
    report = redact_with_report("今天心情不错 and nothing to hide")
    assert report.text == "今天心情不错 and nothing to hide"
    assert dict(report.counts) == {}
    assert report.total == 0
    assert redact("") == ""


def test_matches_point_into_the_original_text_and_hold_no_value() -> None:
    text = "手机１３８１２３４５６７８，邮箱a@b.com"
    matches = find_pii(text)
    assert [(m.kind, text[m.start : m.end]) for m in matches] == [
        (PiiKind.PHONE, "１３８１２３４５６７８"),
        (PiiKind.EMAIL, "a@b.com"),
    ]
    assert "a@b.com" not in repr(matches)


def test_a_match_needs_a_span() -> None:
    with pytest.raises(ValueError, match="span"):
        PiiMatch(kind=PiiKind.PHONE, start=3, end=3)


def test_an_id_that_is_also_a_valid_card_is_an_id() -> None:
    # 440304199003070050 passes GB 11643, and Luhn with a Visa prefix.
    assert redact("号码440304199003070050") == "号码[CN_ID]"


def test_overlapping_finds_merge_into_the_longest() -> None:
    # The digits after "DE89 " would make a card on their own; the IBAN takes them all.
    report = redact_with_report("DE89 3704 0044 0532 0130 00")
    assert report.text == "[IBAN]"
    assert report.counts == {PiiKind.IBAN: 1}


# Look-alikes


def _lookalikes() -> list[str]:
    lines = LOOKALIKES.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("text", _lookalikes())
def test_lookalikes_stay_untouched(text: str) -> None:
    assert redact(text) == text


# Generated PII: (the value as written, its digits or letters once separators are gone).


@pytest.mark.parametrize("kind", list(PiiKind))
@PROPERTY
@given(data=st.data())
def test_generated_pii_never_survives(kind: PiiKind, data: st.DataObject) -> None:
    value, core = data.draw(PII[kind], label="pii")
    before, left, right, after = (data.draw(s) for s in (FILLER, LEFT, RIGHT, FILLER))
    text = f"{before} {left}{value}{right} {after}"

    redacted = redact(text)

    assert kind.placeholder in redacted
    assert value.lower() not in redacted.lower()
    if kind not in (PiiKind.EMAIL, PiiKind.IP):
        assert no_separators(core) not in no_separators(redacted)


@PROPERTY
@given(FILLER)
def test_clean_filler_is_untouched(text: str) -> None:
    assert redact(text) == text


MIXED = st.lists(
    st.one_of(TOKENS, *(strategy.map(lambda pair: pair[0]) for strategy in PII.values())),
    max_size=10,
)


@PROPERTY
@given(st.one_of(st.text(), MIXED.map(" ".join), MIXED.map("".join)))
def test_redaction_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@PROPERTY
@given(st.one_of(st.text(), MIXED.map(" ".join), MIXED.map("".join)))
def test_matches_are_ordered_and_disjoint(text: str) -> None:
    previous_end = 0
    for match in find_pii(text):
        assert previous_end <= match.start < match.end <= len(text)
        previous_end = match.end
