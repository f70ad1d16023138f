"""Finding personal data in free text and replacing it with typed placeholders.

It runs on every turn, before a text is stored or logged, so it is a pure function of
the text: patterns are compiled at import, and a text with no digit, `@` or `:` costs two
short scans (short numbers only, three). Each kind becomes a stable placeholder
(`[EMAIL]`, `[PHONE]`, `[CARD]`, `[IBAN]`, `[CN_ID]`, `[IP]`) that no pattern matches,
and the redacted text is searched again until nothing turns up, so redaction is
idempotent.

The rules, and why (the look-alike corpus in the tests pins each one):

- Boundaries are ASCII letters and digits, not `\\b`: Chinese glues numbers to words
  ("手机13812345678谢谢") and `\\b` sees no boundary there. A number glued to a letter,
  a digit or a decimal point with digits ("v1.2.3.4", "SF1234567890123", "3.14159...")
  is part of something else and is left alone.
- Card numbers, IBANs and Chinese ID numbers carry checksums; a candidate that fails
  its checksum (Luhn; ISO 13616 mod 97 with the country's length; GB 11643 with a real
  birth date and province) is an order number or a timestamp, not personal data.
  Cards also need an issuer prefix in use (2, 3, 4, 5, 6, 81) and, when spaced, a
  card's shape (four digits first, groups of three or more, one separator).
- Phones need a shape: `+` and 8-15 digits; a Chinese mobile (1[3-9] and 9 digits,
  optionally after 86, +86 or 0086, optionally 3-4-4); a North American 3-3-4 with
  separators, or "(415) 555-0132"; a Chinese landline with its area code
  ("010-62345678"; local numbers start with 2-8); a European number in its national form,
  the trunk 0 and an area code, then one or two groups, 10-12 digits in all ("020 7946
  0321", "07700 900123", "030 12345678"), or a UK mobile unspaced ("07700900123"). French
  numbers in pairs ("06 12 34 56 78") are caught written +33 only: at home they look like
  a lottery draw. Other bare digit strings ("4155550132") and numbers without an area
  code ("555-0132") are not phones: they look like order numbers.
- An IPv4 address is a dotted quad of 0-255 without leading zeros, and a bare one
  ("10.0.0.1") counts, since nothing tells it from an address. But "v1.2.3.4" and
  "1.2.3.4.5" are versions, and a quad of single digits ("1.4.5.8不能忍", "8.8.8.8") is
  a list, a version or a public resolver, never someone's address.
- An IPv6 address must parse and have two non-empty groups, and a digit when it has only
  two ("::1" and "Abc::Def", a C++ name, are nobody's address).
- Overlapping finds merge into one placeholder of the longest (ties: the most specific,
  EMAIL > IBAN > CN_ID > CARD > IP > PHONE), so no digit of any find survives.
- Full-width digits and at signs (common in Chinese input) are read as ASCII.
"""

from __future__ import annotations

import calendar
import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

__all__ = ["PiiKind", "PiiMatch", "Redaction", "find_pii", "redact", "redact_with_report"]


class PiiKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    IBAN = "iban"
    CN_ID = "cn_id"
    IP = "ip"

    @property
    def placeholder(self) -> str:
        """What replaces a find of this kind: `[EMAIL]`, `[CN_ID]`, ..."""
        return f"[{self.name}]"


@dataclass(frozen=True, slots=True, kw_only=True)
class PiiMatch:
    """Where one piece of personal data sits in a text: `text[start:end]`.

    It holds no copy of the value, so logging a match leaks nothing.
    """

    kind: PiiKind
    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"empty or negative span {self.start}..{self.end}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Redaction:
    """A redacted text and how many finds of each kind it replaced (kinds found only)."""

    text: str
    counts: Mapping[PiiKind, int] = field(hash=False)

    @property
    def total(self) -> int:
        """How many placeholders went in."""
        return sum(self.counts.values())


def redact(text: str) -> str:
    """`text` with every piece of personal data replaced by its kind's placeholder."""
    return redact_with_report(text).text


def redact_with_report(text: str) -> Redaction:
    """Like `redact`, and says how many finds of each kind were replaced."""
    matches, redacted = _find(text)
    if not matches:
        return Redaction(text=text, counts=_NO_COUNTS)
    counts: dict[PiiKind, int] = {}
    for match in matches:
        counts[match.kind] = counts.get(match.kind, 0) + 1
    return Redaction(text=redacted, counts=MappingProxyType(counts))


def find_pii(text: str) -> list[PiiMatch]:
    """Every piece of personal data in `text`, in order, without overlaps.

    Spans index `text` as given (full-width digits included), so `text[m.start : m.end]`
    is the value.
    """
    return _find(text)[0]


def _find(text: str) -> tuple[list[PiiMatch], str]:
    """The finds in `text`, and `text` with each replaced by its placeholder.

    Taking a find out can free a neighbour that was glued to it ("...0029(415) 555-0132"
    once the ID has gone), so the redacted text is searched again until nothing turns up:
    that is what makes redaction idempotent. Every find holds a digit, "@" or ":" that
    its placeholder lacks, so the loop ends.
    """
    matches: list[PiiMatch] = []
    redacted = text
    while found := _scan(redacted):
        if matches:
            found = [(*_original_span(matches, start, end), kind) for start, end, kind in found]
            found += ((match.start, match.end, match.kind) for match in matches)
        matches = _merge(found)
        redacted = _replace(text, matches)
    return matches, redacted


def _scan(text: str) -> list[tuple[int, int, PiiKind]]:
    scan = text.translate(_FULLWIDTH) if _FULLWIDTH_HINT.search(text) else text
    found: list[tuple[int, int, PiiKind]] = []
    if "@" in scan:
        found += ((m.start(), m.end(), PiiKind.EMAIL) for m in _EMAIL.finditer(scan))
    if ":" in scan:
        found += _find_ipv6(scan)
    if _DIGIT.search(scan) is None:
        return found
    found += _find_ibans(scan)
    if _NUMBER.search(scan) is not None:
        found += _find_phones(scan)
        found += _find_cards(scan)
        found += _find_cn_ids(scan)
        found += ((m.start(), m.end(), PiiKind.IP) for m in _IPV4.finditer(scan))
    return found


def _replace(text: str, matches: list[PiiMatch]) -> str:
    parts: list[str] = []
    pos = 0
    for match in matches:
        parts += (text[pos : match.start], match.kind.placeholder)
        pos = match.end
    parts.append(text[pos:])
    return "".join(parts)


def _original_span(matches: list[PiiMatch], start: int, end: int) -> tuple[int, int]:
    """Where a span of the redacted text lies in the original; a placeholder counts whole."""
    return _original(matches, start, is_end=False), _original(matches, end, is_end=True)


def _original(matches: list[PiiMatch], pos: int, *, is_end: bool) -> int:
    shift = 0  # original minus redacted position, left of the current placeholder
    for match in matches:
        placeholder_start = match.start - shift
        placeholder_end = placeholder_start + len(match.kind.placeholder)
        if pos < placeholder_start + is_end:
            break
        if pos < placeholder_end + is_end:
            return match.end if is_end else match.start
        shift += match.end - match.start - len(match.kind.placeholder)
    return pos + shift


# Patterns. `_START`/`_END` say "not glued to a letter, a digit or a decimal part".

_START = r"(?<![0-9A-Za-z])(?<![0-9]\.)"
_END = r"(?![0-9A-Za-z])(?!\.[0-9])"
_DIGIT = re.compile(r"[0-9]")
# Every phone, card, ID number and IPv4 address holds a stretch like this; a text that
# has only short numbers ("2 kids", "in 2019") skips their patterns.
_NUMBER = re.compile(r"[0-9][0-9 ().\-]{5,}[0-9]")
_DIGITS = re.compile(r"[0-9]+")
_FULLWIDTH_HINT = re.compile("[\uff10-\uff19\uff20]")
_FULLWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}

# RFC 5322 local part (any `atext`: "user=john@x.com" loses "user=" rather than leak
# half an address), then a domain whose top level is alphabetic or punycode.
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
_EMAIL = re.compile(
    rf"(?<![{_ATEXT}.])[{_ATEXT}][{_ATEXT}.]*@"
    r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:[Xx][Nn]--[A-Za-z0-9-]{1,59}|[A-Za-z]{2,63})"
    r"(?![A-Za-z0-9])"
)
# "+" then digit groups; a separator is one of " .-", or a parenthesis with an optional one.
_INTL_PHONE = re.compile(_START + r"\+[1-9][0-9]*(?:(?:[ .\-]\(?|\(|\)[ .\-]?)[0-9]+)*")
_CN_MOBILE = re.compile(
    _START + r"(?:(?:\+|00)?86[ \-]?)?1[3-9][0-9](?:[0-9]{8}|[ \-][0-9]{4}[ \-][0-9]{4})" + _END
)
# An area code in parentheses needs no boundary on its left: the parenthesis is one.
_CN_LANDLINE = re.compile(
    rf"(?:\(0[1-9][0-9]{{1,2}}\)[ \-]?|{_START}0[1-9][0-9]{{1,2}}[ \-])[2-8][0-9]{{6,7}}{_END}"
)
# National European forms: an area code and one or two groups of three digits or more,
# 10-12 digits in all (`_EU_DIGITS`), so a date ("01-02-2024") or the tail of a broken
# IBAN ("... 0532 0130 01") is not a phone.
_EU_GROUPED = tuple(
    re.compile(_START + r"0[1-9][0-9]{1,4}" + rf"(?:[ \-][0-9]{{3,8}}){{{groups}}}" + _END)
    for groups in (1, 2)  # each tried: "07700 900123 2024" is one group and a year
)
_EU_DIGITS = range(10, 13)
_UK_MOBILE = re.compile(_START + r"07[0-9]{9}" + _END)
_NA_PHONE = re.compile(
    rf"(?:(?:{_START}1[ .\-]?)?\([2-9][0-9]{{2}}\)[ ]?|{_START}(?:1[ .\-]?)?[2-9][0-9]{{2}}[ .\-])"
    rf"[2-9][0-9]{{2}}[ .\-][0-9]{{4}}{_END}"
)
# Digit groups joined by single spaces or hyphens, at least 13 characters long.
_CARD_RUN = re.compile(_START + r"(?=[0-9][0-9 \-]{12})[0-9]+(?:[ \-][0-9]+)*")
_IBAN_START = re.compile(r"(?<![0-9A-Za-z])([A-Za-z]{2})[0-9]{2}")
_CN_ID = re.compile(
    _START + r"([1-9][0-9])[0-9]{4}[ \-]?((?:19|20)[0-9]{2})(0[1-9]|1[0-2])"
    r"(0[1-9]|[12][0-9]|3[01])[ \-]?[0-9]{3}[0-9Xx]" + _END
)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
# Four octets, one of them two digits or more ("1.4.5.8" is a list, not an address).
_IPV4 = re.compile(r"(?<![0-9A-Za-z.])(?=[0-9.]*[0-9]{2})" + rf"(?:{_OCTET}\.){{3}}{_OCTET}" + _END)
_IPV6 = re.compile(
    r"(?<![0-9A-Za-z])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,8}(?:\.[0-9]{1,3}){0,3}"
    r"(?![0-9A-Za-z])"
)

_NO_COUNTS: Mapping[PiiKind, int] = MappingProxyType({})
_SPECIFICITY = (PiiKind.EMAIL, PiiKind.IBAN, PiiKind.CN_ID, PiiKind.CARD, PiiKind.IP, PiiKind.PHONE)
_RANK = {kind: rank for rank, kind in enumerate(_SPECIFICITY)}


def _merge(found: list[tuple[int, int, PiiKind]]) -> list[PiiMatch]:
    """Overlapping finds become one, of the longest (ties: the most specific) kind."""
    found.sort(key=lambda item: (item[0], -item[1]))
    merged: list[PiiMatch] = []
    start, end, kind = found[0]
    best = (end - start, -_RANK[kind])
    for item_start, item_end, item_kind in found[1:]:
        if item_start < end:
            score = (item_end - item_start, -_RANK[item_kind])
            if score > best:
                best, kind = score, item_kind
            end = max(end, item_end)
            continue
        merged.append(PiiMatch(kind=kind, start=start, end=end))
        start, end, kind = item_start, item_end, item_kind
        best = (end - start, -_RANK[kind])
    merged.append(PiiMatch(kind=kind, start=start, end=end))
    return merged


# Phones


def _find_phones(scan: str) -> Iterator[tuple[int, int, PiiKind]]:
    for match in _INTL_PHONE.finditer(scan):
        # Keep the leading groups that fit E.164's 15 digits: what follows is another number.
        end, kept = match.start(), 0
        for group in _DIGITS.finditer(scan, match.start(), match.end()):
            if kept + group.end() - group.start() > 15:
                break
            end, kept = group.end(), kept + group.end() - group.start()
        if kept >= 8:
            yield match.start(), end, PiiKind.PHONE
    for pattern in (_CN_MOBILE, _CN_LANDLINE, _NA_PHONE, _UK_MOBILE):
        for match in pattern.finditer(scan):
            yield match.start(), match.end(), PiiKind.PHONE
    for pattern in _EU_GROUPED:
        for match in pattern.finditer(scan):
            if sum(map(str.isdigit, match.group())) in _EU_DIGITS:
                yield match.start(), match.end(), PiiKind.PHONE


# Payment cards


def _find_cards(scan: str) -> Iterator[tuple[int, int, PiiKind]]:
    """Every run of whole digit groups that is a card number.

    A run may hold more than a card ("4111 1111 1111 1111 123" with the CVV), so each
    window of whole groups is tried. Several groups must be printed like a card: four
    digits first, groups of 3+ after, one separator throughout; so spaced lists of small
    numbers (lottery draws) or a phone number next to a year are never cards.
    """
    for run in _CARD_RUN.finditer(scan):
        groups = [group.span() for group in _DIGITS.finditer(scan, run.start(), run.end())]
        if _GLUED.match(scan, run.end()):
            groups.pop()  # its last group goes on as a word or a decimal part
        for start, end in _card_windows(groups):
            window = scan[start:end]
            digits = window.replace(" ", "").replace("-", "")
            if (
                13 <= len(digits) <= 19
                and _CARD_SHAPE.fullmatch(window)
                and _card_prefix_ok(digits)
                and _luhn_ok(digits)
            ):
                yield start, end, PiiKind.CARD


def _card_windows(groups: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Spans of whole groups that could be a card: one group, or four digits then 3+ each."""
    for i, (start, first_end) in enumerate(groups):
        yield start, first_end
        if first_end - start != 4:
            continue
        digits = 4
        for group_start, group_end in groups[i + 1 :]:
            digits += group_end - group_start
            if group_end - group_start < 3 or digits > 19:
                break
            yield start, group_end


_GLUED = re.compile(r"[0-9A-Za-z]|\.[0-9]")
_CARD_SHAPE = re.compile(r"[0-9]{13,19}|[0-9]{4}([ \-])[0-9]{3,}(?:\1[0-9]{3,})*")


def _card_prefix_ok(digits: str) -> bool:
    """Issuer prefixes in use: Visa, Mastercard, Amex, Diners, JCB, Discover, UnionPay, Mir."""
    head = int(digits[:4])
    first = head // 1000
    if first in (4, 5, 6):
        return True
    if first == 3:
        return head >= 3400 or head <= 3059
    if first == 2:
        return 2200 <= head <= 2204 or 2221 <= head <= 2720
    return 8100 <= head <= 8171


_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        total += _LUHN_DOUBLED[value] if position % 2 else value
    return total % 10 == 0


# IBAN: ISO 13616 lengths by country (SWIFT IBAN registry).

_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
# The rest of an IBAN after its first four characters, single spaces allowed anywhere.
_IBAN_REST = {
    length - 4: re.compile(rf"(?:[ ]?[0-9A-Za-z]){{{length - 4}}}(?![0-9A-Za-z])")
    for length in set(_IBAN_LENGTHS.values())
}


def _find_ibans(scan: str) -> Iterator[tuple[int, int, PiiKind]]:
    for start in _IBAN_START.finditer(scan):
        length = _IBAN_LENGTHS.get(start.group(1).upper())
        if length is None:
            continue
        rest = _IBAN_REST[length - 4].match(scan, start.end())
        if rest is None:
            continue
        compact = (start.group() + rest.group().replace(" ", "")).upper()
        if _mod97(compact[4:] + compact[:4]) == 1:
            yield start.start(), rest.end(), PiiKind.IBAN


def _mod97(alnum: str) -> int:
    return int("".join(str(int(char, 36)) for char in alnum)) % 97


# Chinese resident ID numbers (GB 11643-1999).

_CN_PROVINCES = frozenset({
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
    50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91,
})  # fmt: skip
_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"


def _find_cn_ids(scan: str) -> Iterator[tuple[int, int, PiiKind]]:
    for match in _CN_ID.finditer(scan):
        province, year, month, day = (int(part) for part in match.groups())
        if province not in _CN_PROVINCES or day > calendar.monthrange(year, month)[1]:
            continue
        compact = match.group().replace(" ", "").replace("-", "").upper()
        total = sum(
            int(char) * weight for char, weight in zip(compact[:17], _CN_ID_WEIGHTS, strict=True)
        )
        if _CN_ID_CHECK[total % 11] == compact[17]:
            yield match.start(), match.end(), PiiKind.CN_ID


# IPv6: the pattern finds candidates, `ipaddress` decides.


def _find_ipv6(scan: str) -> Iterator[tuple[int, int, PiiKind]]:
    for match in _IPV6.finditer(scan):
        span = _ipv6_span(scan, *match.span())
        if span is not None:
            yield *span, PiiKind.IP


def _ipv6_span(scan: str, start: int, end: int) -> tuple[int, int] | None:
    """The address in a candidate, without a colon glued on by the sentence ("2001:db8::1:")."""
    for skip in (0, 1) if scan[start] == ":" else (0,):
        for cut in (0, 1) if scan[end - 1] == ":" else (0,):
            if _is_ipv6(scan[start + skip : end - cut]):
                return start + skip, end - cut
    return None


def _is_ipv6(text: str) -> bool:
    # "::1", "a::b" and "Abc::Def" (a C++ name) parse, but are nobody's address.
    groups = sum(1 for group in text.split(":") if group)
    if groups < 2 or (groups == 2 and _DIGIT.search(text) is None):
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True
