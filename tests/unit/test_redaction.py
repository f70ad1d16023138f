"""PII redaction: examples per kind, generated PII that must not survive, look-alikes that stay.

The strategies build valid checksums themselves (Luhn, ISO 13616 mod 97, GB 11643) rather
than borrow the module's validators, so a wrong validator cannot agree with itself.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import string
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


def _digits(min_size: int, max_size: int | None = None) -> st.SearchStrategy[str]:
    return st.text(string.digits, min_size=min_size, max_size=max_size or min_size)


def _luhn_completed(body: str) -> str:
    total = 0
    for position, char in enumerate(reversed(body)):
        value = int(char) * (1 if position % 2 else 2)
        total += value - 9 if value > 9 else value
    return body + str(-total % 10)


def _grouped(value: str, sizes: tuple[int, ...], sep: str) -> str:
    groups, pos = [], 0
    for size in sizes:
        groups.append(value[pos : pos + size])
        pos += size
    return sep.join(groups)


_CARD_BRANDS = [
    ("4", 16, (4, 4, 4, 4)),
    ("4", 13, (4, 4, 5)),
    ("4", 19, (4, 4, 4, 4, 3)),
    ("51", 16, (4, 4, 4, 4)),
    ("55", 16, (4, 4, 4, 4)),
    ("2221", 16, (4, 4, 4, 4)),
    ("2720", 16, (4, 4, 4, 4)),
    ("34", 15, (4, 6, 5)),
    ("37", 15, (4, 6, 5)),
    ("36", 14, (4, 6, 4)),
    ("3528", 16, (4, 4, 4, 4)),
    ("6011", 16, (4, 4, 4, 4)),
    ("65", 16, (4, 4, 4, 4)),
    ("62", 16, (4, 4, 4, 4)),
    ("62", 19, (4, 4, 4, 4, 3)),
]


@st.composite
def cards(draw: st.DrawFn) -> tuple[str, str]:
    prefix, length, sizes = draw(st.sampled_from(_CARD_BRANDS))
    number = _luhn_completed(prefix + draw(_digits(length - len(prefix) - 1)))
    sep = draw(st.sampled_from(["", " ", "-"]))
    return (_grouped(number, sizes, sep) if sep else number), number


# Country: the BBAN as (a)lpha, (n)umeric and (c)haracter runs.
_IBAN_SHAPES = {
    "DE": "n18",
    "GB": "a4n14",
    "FR": "n10c11n2",
    "NL": "a4n10",
    "ES": "n20",
    "IT": "a1n10c12",
    "CH": "n5c12",
    "NO": "n11",
    "BE": "n12",
    "MT": "a4n5c18",
    "PL": "n24",
    "SA": "n2c18",
}
_ALPHABETS = {
    "a": string.ascii_uppercase,
    "n": string.digits,
    "c": string.ascii_uppercase + string.digits,
}


@st.composite
def ibans(draw: st.DrawFn) -> tuple[str, str]:
    country = draw(st.sampled_from(sorted(_IBAN_SHAPES)))
    bban = "".join(
        draw(st.text(_ALPHABETS[kind], min_size=int(size), max_size=int(size)))
        for kind, size in re.findall(r"([anc])(\d+)", _IBAN_SHAPES[country])
    )
    numeric = "".join(str(int(char, 36)) for char in bban + country + "00")
    iban = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    style = draw(st.sampled_from(["compact", "spaced", "lower"]))
    if style == "spaced":
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)), iban
    return (iban.lower() if style == "lower" else iban), iban


_PROVINCES = [11, 12, 13, 31, 32, 33, 35, 37, 41, 44, 45, 50, 51, 53, 61, 65, 71, 81, 82]
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


@st.composite
def cn_ids(draw: st.DrawFn) -> tuple[str, str]:
    province = draw(st.sampled_from(_PROVINCES))
    born = draw(st.dates(dt.date(1900, 1, 1), dt.date(2099, 12, 31)))
    body = f"{province}{draw(_digits(4))}{born:%Y%m%d}{draw(_digits(3))}"
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS, strict=True)) % 11]
    number = body + check
    style = draw(st.sampled_from(["compact", "lower", "spaced", "hyphens"]))
    if style in ("spaced", "hyphens"):
        return _grouped(number, (6, 8, 4), " " if style == "spaced" else "-"), number
    return (number.lower() if style == "lower" else number), number


@st.composite
def cn_mobiles(draw: st.DrawFn) -> tuple[str, str]:
    number = "1" + draw(st.sampled_from("3456789")) + draw(_digits(9))
    a, b, c = number[:3], number[3:7], number[7:]
    shape = draw(
        st.sampled_from(
            [
                *("{n}", "+86{n}", "+86 {n}", "+86-{n}", "0086 {n}", "86{n}"),
                *("{a} {b} {c}", "{a}-{b}-{c}", "+86 {a} {b} {c}"),
            ]
        )
    )
    return shape.format(n=number, a=a, b=b, c=c), number


@st.composite
def na_phones(draw: st.DrawFn) -> tuple[str, str]:
    area, exchange = draw(st.integers(200, 999)), draw(st.integers(200, 999))
    line = f"{draw(st.integers(0, 9999)):04d}"
    shape = draw(
        st.sampled_from(
            [
                *("({a}) {e}-{l}", "({a}){e}-{l}", "{a}-{e}-{l}", "{a}.{e}.{l}", "{a} {e} {l}"),
                *("1-{a}-{e}-{l}", "+1 {a} {e} {l}", "+1 ({a}) {e}-{l}"),
            ]
        )
    )
    return shape.format(a=area, e=exchange, l=line), f"{area}{exchange}{line}"


@st.composite
def intl_phones(draw: st.DrawFn) -> tuple[str, str]:
    code = draw(st.sampled_from(["1", "7", "33", "44", "49", "61", "81", "91", "852", "971"]))
    subscriber = draw(_digits(7, 15 - len(code)))
    size = draw(st.integers(2, 4))
    groups = [subscriber[i : i + size] for i in range(0, len(subscriber), size)]
    if draw(st.booleans()):
        return f"+{code} ({groups[0]}) {' '.join(groups[1:])}".rstrip(), code + subscriber
    sep = draw(st.sampled_from([" ", "-", "."]))
    return f"+{code}{sep}{sep.join(groups)}", code + subscriber


@st.composite
def cn_landlines(draw: st.DrawFn) -> tuple[str, str]:
    area = draw(st.sampled_from(["010", "020", "021", "023", "028", "0755", "0571", "0731"]))
    local = draw(st.sampled_from("2345678")) + draw(_digits(7 if len(area) == 3 else 6, 7))
    shape = draw(st.sampled_from(["{a}-{n}", "({a}){n}", "({a}) {n}", "{a} {n}"]))
    return shape.format(a=area, n=local), area + local


def _ipv6_text(address: ipaddress.IPv6Address, upper: bool) -> str:
    text = str(address)
    groups = [group for group in text.split(":") if group]
    # The documented floor: two groups, and a digit when there are only two.
    if len(groups) < 2 or (len(groups) == 2 and not re.search("[0-9]", text)):
        text = address.exploded
    return text.upper() if upper else text


def _no_separators(value: str) -> str:
    return re.sub(r"[ \-.()+]", "", value).upper()


PII: dict[PiiKind, st.SearchStrategy[tuple[str, str]]] = {
    PiiKind.EMAIL: st.one_of(
        st.emails(),
        st.from_regex(r"[a-z][a-z0-9._]{0,15}@(qq|163|gmail|example)\.(com|cn)", fullmatch=True),
    ).map(lambda email: (email, email)),
    PiiKind.PHONE: st.one_of(cn_mobiles(), na_phones(), intl_phones(), cn_landlines()),
    PiiKind.CARD: cards(),
    PiiKind.IBAN: ibans(),
    PiiKind.CN_ID: cn_ids(),
    PiiKind.IP: st.one_of(
        st.ip_addresses(v=4).map(str).filter(lambda address: re.search("[0-9]{2}", address)),
        st.builds(_ipv6_text, st.ip_addresses(v=6), st.booleans()),
    ).map(lambda address: (address, address)),
}

_WORDS = st.sampled_from(
    ["hello", "the", "order", "price", "is", "my", "number", "please", "thanks", "OK", "Re"]
)
_HANZI = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), min_size=1, max_size=6)
_PUNCTUATION = st.sampled_from(list(",.!?;:()\"'%$¥—…，。！？：；（）、「」"))
_TOKENS = st.one_of(_WORDS, _HANZI, _PUNCTUATION, st.integers(0, 99).map(str))
FILLER = st.lists(_TOKENS, max_size=8).map(" ".join)
# What may sit right against a piece of PII: space, punctuation, Chinese, another number.
LEFT = st.one_of(
    st.sampled_from([" ", "\n", "，", "：", ":", "(", "（", "「", "、", "No. 5 ", " 2024 "]),
    _HANZI,
)
RIGHT = st.one_of(
    st.sampled_from([" ", "\n", "，", "。", ".", ",", "!", "?", ")", "）", "」", ":", ";"]),
    st.sampled_from([" 2024", " 12"]),
    _HANZI,
)


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
        assert _no_separators(core) not in _no_separators(redacted)


@PROPERTY
@given(FILLER)
def test_clean_filler_is_untouched(text: str) -> None:
    assert redact(text) == text


MIXED = st.lists(
    st.one_of(_TOKENS, *(strategy.map(lambda pair: pair[0]) for strategy in PII.values())),
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
