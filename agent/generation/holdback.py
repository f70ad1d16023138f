"""How much of the newest streamed text could still become personal data or a blocked phrase.

The output guard lets a reply go word by word; these functions say how many of the
newest characters it must keep back because text yet to come could turn them into
something it has to redact or replace. Everything before that is final: nothing that
arrives later can change how it reads.

- **Personal data**: every pattern of `agent.privacy.redaction` is either one word (an
  e-mail, an IP address, a Chinese ID) or a run of number-like words whose first word
  holds a digit or a ``+`` (phones, cards, IBANs: ``+1 (415) 555-0132``, ``GB29 NWBK
  6016 …``). So the unfinished last word is kept back, and so is the run of number-like
  words before it, from its first word with a digit or ``+`` on. A word is number-like
  when it holds a digit, ``@`` or ``+``, is made only of ``()-./:``, or is at most four
  letters and digits (an IBAN group such as ``NWBK``).
- **Blocklisted phrases**: the longest end of the text that is the start of a phrase
  (compared as the guard matches: case-insensitive, full-width letters as ASCII, any
  whitespace between words) is kept back until the phrase is complete or cannot be.

Words end at whitespace, at a Chinese comma, enumeration comma, semicolon or colon, and
around each CJK ideograph, so Chinese text goes character by character while a number
glued to it is kept whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["PhrasePrefixes", "breaks_after", "is_separator", "personal_data_tail"]

# Where a word ends besides whitespace.
_PAUSES = frozenset("，、；：")
# Full-width ASCII (and the ideographic space) read as ASCII; one character for one.
FULLWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}

_SHORT_GROUP = re.compile(r"[0-9A-Za-z]{1,4}")
_CONNECTORS = re.compile(r"[()\-./:]+")
_STARTS_NUMBER = re.compile(r"[0-9+]")
_SPACES = re.compile(r"\s+")
# Everything personal data can start with: a digit or `+`, ASCII or full-width. A text
# without one holds back its unfinished word only (the common case, found in C).
_NUMBER_START = re.compile("[0-9+\uff10-\uff19\uff0b]")
# The unfinished last word: what follows the last place `breaks_after` allows a cut.
_UNFINISHED_WORD = re.compile("[^\\s\uff0c\u3001\uff1b\uff1a\u4e00-\u9fff\u3400-\u4dbf]*\\Z")


def _ideograph(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf"


def is_separator(char: str) -> bool:
    """Whitespace or a Chinese pause: where a sentence that ran too long may be cut."""
    return char.isspace() or char in _PAUSES


def breaks_after(char: str) -> bool:
    """Whether a word ends after `char`: the places where the guard may cut."""
    return is_separator(char) or _ideograph(char)


def _number_like(word: str) -> bool:
    word = word.translate(FULLWIDTH)
    return (
        any(char.isdigit() or char in "@+" for char in word)
        or _CONNECTORS.fullmatch(word) is not None
        or _SHORT_GROUP.fullmatch(word) is not None
    )


def personal_data_tail(text: str) -> int:
    """How many characters at the end of `text` personal data still arriving could claim."""
    if _NUMBER_START.search(text) is None:
        unfinished = _UNFINISHED_WORD.search(text)
        assert unfinished is not None  # the pattern matches the empty end of any text
        return unfinished.end() - unfinished.start()
    end = len(text)
    start = end
    while start > 0 and not breaks_after(text[start - 1]):
        start -= 1  # the unfinished word
    hold_from = start
    while True:
        word_end = start
        while word_end > 0 and is_separator(text[word_end - 1]):
            word_end -= 1
        word_start = word_end
        while word_start > 0 and not breaks_after(text[word_start - 1]):
            word_start -= 1
        word = text[word_start:word_end]
        if not word or not _number_like(word):
            break
        if _STARTS_NUMBER.search(word.translate(FULLWIDTH)):
            hold_from = word_start
        start = word_start
    return end - hold_from


class PhrasePrefixes:
    """Finds the end of a text that a blocklisted phrase could still complete."""

    def __init__(self, phrases: Iterable[str]) -> None:
        self._phrases = tuple({_normal(phrase) for phrase in phrases})
        # A phrase of n characters is matched by at most n + (whitespace) characters;
        # twice its length covers any run of spaces a model writes between its words.
        self._reach = 2 * max(map(len, self._phrases), default=0)

    def tail(self, text: str) -> int:
        """How many characters at the end of `text` begin a phrase not yet complete."""
        for start in range(max(0, len(text) - self._reach), len(text)):
            if text[start].isspace() or (start > 0 and _glued(text[start - 1], text[start])):
                continue
            end = _normal(text[start:])
            if any(len(end) < len(phrase) and phrase.startswith(end) for phrase in self._phrases):
                return len(text) - start
        return 0


def _normal(text: str) -> str:
    return _SPACES.sub(" ", text.translate(FULLWIDTH).lower())


def _glued(before: str, first: str) -> bool:
    """A phrase starting with an ASCII letter or digit matches only at a word start."""
    before, first = before.translate(FULLWIDTH), first.translate(FULLWIDTH)
    return before.isascii() and before.isalnum() and first.isascii() and first.isalnum()
