"""Hypothesis strategies for personal data and the text around it.

Each PII strategy draws `(value, core)`: the text as written and its digits and letters
(for checking that no part survives). Checksums are built here (Luhn, ISO 13616 mod 97,
GB 11643) rather than borrowed from the redaction module, so a wrong validator cannot
agree with itself.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import string

from hypothesis import strategies as st

from agent.privacy.redaction import PiiKind

__all__ = ["FILLER", "LEFT", "PII", "RIGHT", "TOKENS", "no_separators"]


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


def no_separators(value: str) -> str:
    return re.sub(r"[ \-.()+]", "", value).upper()


@st.composite
def european_nationals(draw: st.DrawFn) -> tuple[str, str]:
    """UK and German numbers as written at home, the trunk 0 first."""
    kind = draw(st.sampled_from(["uk-mobile", "uk-london", "uk-area", "de"]))
    if kind == "de":
        area = draw(st.sampled_from(["030", "040", "089", "0151", "0170", "0221"]))
        local = draw(st.sampled_from("123456789")) + draw(_digits(6, 7))
        return f"{area}{draw(st.sampled_from([' ', '-']))}{local}", area + local
    sizes = {"uk-mobile": (5, 6), "uk-london": (3, 4, 4), "uk-area": (4, 3, 4)}[kind]
    first = {"uk-mobile": "07", "uk-london": "02", "uk-area": "01"}[kind]
    number = first + draw(st.sampled_from("123456789")) + draw(_digits(8))
    if kind == "uk-mobile" and draw(st.booleans()):
        return number, number
    return _grouped(number, sizes, draw(st.sampled_from([" ", "-"]))), number


PII: dict[PiiKind, st.SearchStrategy[tuple[str, str]]] = {
    PiiKind.EMAIL: st.one_of(
        st.emails(),
        st.from_regex(r"[a-z][a-z0-9._]{0,15}@(qq|163|gmail|example)\.(com|cn)", fullmatch=True),
    ).map(lambda email: (email, email)),
    PiiKind.PHONE: st.one_of(
        cn_mobiles(), na_phones(), intl_phones(), cn_landlines(), european_nationals()
    ),
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
TOKENS = st.one_of(_WORDS, _HANZI, _PUNCTUATION, st.integers(0, 99).map(str))
FILLER = st.lists(TOKENS, max_size=8).map(" ".join)
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
