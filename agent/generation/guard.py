"""The output guard: blocklisted content and personal data never reach the client.

A generator streams a reply in pieces that split words, numbers and e-mail addresses
anywhere. The guard lets text through with personal data redacted
(`agent.privacy.redaction.redact`) and replaces blocklisted content with a neutral
sentence in the reply's language, at one of two paces:

- ``release="word"`` (the default): each word goes as soon as nothing still to come can
  change it: the unfinished last word, a run of numbers that may still grow into a phone,
  card or IBAN, and the start of a blocklisted phrase are held back
  (`agent.generation.holdback`); everything before is final. The client sees the first
  words of a reply as they are generated. A blocklisted phrase replaces itself and the
  rest of its sentence; the start of that sentence has already gone.
- ``release="sentence"``: text is held until the end of its sentence, and a sentence
  with blocklisted content is replaced whole. The client sees the first sentence once it
  is complete. Compiled blocklist patterns need this pace: a pattern cannot say whether
  the text so far is the start of a match.

Where a sentence ends (`SentenceSplitter`):

- after `.`, `!` or `?` (a run of them, and closing quotes or brackets after them) that
  is followed by whitespace. So "3.14", "v1.2", "john.doe@example.com" and "415.555.0132"
  never end a sentence, but a sentence ending in "." waits for the next character;
- right after an ideographic full stop or a full-width exclamation or question mark,
  unless glued to a full-width letter or digit (as in a full-width e-mail address);
- right after a newline.

No pattern of the redaction module spans any of these, and no cut, word or sentence,
splits personal data or a phrase that the guard can see, so redacting piece by piece
finds what redacting the whole reply would (property-tested with every kind of personal
data and random chunking). A sentence that runs past `max_hold` characters is let
through in part: the guard cuts it after a space (or a Chinese comma) where the cut
splits no personal data and no blocklisted phrase it can see, and keeps back at least
`keep` characters, so a phrase or an address that is still arriving is never split
either. Sentence by sentence, what is let through depends only on the text, never on
how it was chunked: the splitter decides as it would, fed one character at a time.

`SentenceSplitter` and `ReplyFilter` are sans-I/O (text in, text out); `OutputGuard.guard`
is the thin asynchronous layer over a generator's stream.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from agent.errors import ConfigError
from agent.generation.holdback import (
    FULLWIDTH,
    PhrasePrefixes,
    breaks_after,
    is_separator,
    personal_data_tail,
)
from agent.language import Language
from agent.privacy.redaction import find_pii, redact

__all__ = [
    "DEFAULT_REPLACEMENTS",
    "OutputGuard",
    "ReplyFilter",
    "Segment",
    "SentenceSplitter",
]

DEFAULT_REPLACEMENTS: Mapping[Language, str] = MappingProxyType(
    {"en": "I'll leave that part out.", "zh": "这部分我就不说了。"}
)

_CLOSERS = "\"')\\]}\u201d\u2019\u300d\u300f\uff09\u300b\u3011"
_BOUNDARY = re.compile(
    rf"[.!?]+[{_CLOSERS}]*(?=\s)"  # ASCII: only once whitespace follows
    r"|(?<![\uff10-\uff19\uff21-\uff3a\uff41-\uff5a])[。！？]"  # full-width: at once
    r"|\n"
)
# How far back a cut stays from the newest text: longer than any address, phone or IBAN
# the redaction module finds in practice.
_PII_REACH = 64
_MIN_HOLD = 16

Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of the reply the splitter lets go: a sentence, or the start of a long one."""

    text: str
    ends_sentence: bool


class SentenceSplitter:
    """Cuts streamed text into sentences, holding at most `max_hold` characters back.

    `protect(window)` names spans of a held window that a cut must not split; `keep` is
    how many of the newest characters a cut always leaves held.
    """

    def __init__(
        self,
        *,
        max_hold: int = 200,
        keep: int = _PII_REACH,
        protect: Callable[[str], Iterable[Span]] | None = None,
        hold_back: Callable[[str], int] | None = None,
    ) -> None:
        if max_hold < _MIN_HOLD or not 1 <= keep <= max_hold // 2:
            raise ConfigError(
                f"max_hold must be at least {_MIN_HOLD} and keep between 1 and max_hold / 2; "
                f"got max_hold={max_hold}, keep={keep}"
            )
        self._max_hold = max_hold
        self._keep = keep
        self._protect = protect
        self._hold_back = hold_back
        self._buffer = ""  # the last character let go (context), then the held text
        self._start = 0  # where the held text begins in `_buffer`

    @property
    def held(self) -> str:
        """The text received and not let go yet."""
        return self._buffer[self._start :]

    def feed(self, text: str) -> list[Segment]:
        """The segments that `text`, appended to what is held, completes."""
        buffer = self._buffer + text
        pos = self._start
        segments: list[Segment] = []
        while True:
            window_end = min(len(buffer), pos + self._max_hold + 1)
            match = _BOUNDARY.search(buffer, pos, window_end)
            if match is not None:
                segments.append(Segment(buffer[pos : match.end()], ends_sentence=True))
                pos = match.end()
            elif len(buffer) - pos > self._max_hold:
                window = buffer[pos:window_end]
                cut = self._cut(window)
                segments.append(Segment(window[:cut], ends_sentence=False))
                pos += cut
            else:
                break
        if self._hold_back is not None and pos < len(buffer):
            held = buffer[pos:]
            if cut := self._word_cut(held, self._hold_back):
                segments.append(Segment(held[:cut], ends_sentence=False))
                pos += cut
        context = max(pos - 1, 0)
        self._buffer, self._start = buffer[context:], pos - context
        return segments

    def flush(self) -> Segment | None:
        """What is still held, at the end of the stream; the splitter is empty after."""
        held = self.held
        self._buffer, self._start = "", 0
        return Segment(held, ends_sentence=True) if held else None

    def _word_cut(self, held: str, hold_back: Callable[[str], int]) -> int:
        """The end of the held text's last word that nothing still to come can change; 0: none."""
        last = len(held) - hold_back(held)
        if last <= 0:
            return 0
        spans = list(self._protect(held)) if self._protect is not None else []
        for cut in range(last, 0, -1):
            if breaks_after(held[cut - 1]) and not any(a < cut < b for a, b in spans):
                return cut
        return 0

    def _cut(self, window: str) -> int:
        """Where to cut a window of `max_hold + 1` characters that holds no sentence end."""
        limit = len(window) - self._keep
        spans = list(self._protect(window)) if self._protect is not None else []

        def splits(cut: int) -> bool:
            return any(start < cut < end for start, end in spans)

        for cut in range(limit, 0, -1):
            if is_separator(window[cut - 1]) and not splits(cut):
                return cut
        cut = limit
        while covering := [start for start, end in spans if start < cut < end]:
            cut = min(covering)
        return cut or limit  # a single find longer than the window: cut it after all


class ReplyFilter:
    """One reply's guard, sans-I/O: `feed` it chunks and `finish` it; each returns safe text.

    A blocklisted piece becomes the replacement sentence, and so does the rest of its
    sentence when it was let go in parts (word by word, or cut by `max_hold`); several
    replaced sentences in a row become one replacement.
    """

    def __init__(self, guard: OutputGuard, language: Language) -> None:
        self._guard = guard
        self._language = language
        self._splitter = guard.splitter()
        self._in_blocked_sentence = False
        self._just_replaced = False

    def feed(self, chunk: str) -> str:
        return "".join(self._check(segment) for segment in self._splitter.feed(chunk))

    def finish(self) -> str:
        segment = self._splitter.flush()
        return self._check(segment) if segment is not None else ""

    def _check(self, segment: Segment) -> str:
        text = segment.text
        if not text.strip():
            self._in_blocked_sentence &= not segment.ends_sentence
            return text
        blocked = self._in_blocked_sentence or self._guard.is_blocked(text)
        self._in_blocked_sentence = blocked and not segment.ends_sentence
        if not blocked:
            self._just_replaced = False
            return redact(text)
        if self._just_replaced:
            return ""
        self._just_replaced = True
        return self._guard.replace(text, self._language)


class OutputGuard:
    """Redacts personal data in generated text and replaces blocklisted content.

    `blocklist` holds phrases, matched case-insensitively (full-width letters as ASCII,
    any whitespace between words) and as whole words where they begin or end with an
    ASCII letter or digit; Chinese phrases match anywhere. Compiled patterns are used as
    given (with ``release="sentence"`` only). A phrase cannot span a sentence end.
    `replacements` is the sentence that stands in for blocked text, per language.
    `release` is the pace described in the module docstring. Reusable and safe to
    share: each reply gets its own `ReplyFilter`.
    """

    def __init__(
        self,
        *,
        blocklist: Iterable[str | re.Pattern[str]] = (),
        replacements: Mapping[Language, str] = DEFAULT_REPLACEMENTS,
        max_hold: int = 200,
        release: Literal["word", "sentence"] = "word",
    ) -> None:
        phrases: list[str] = []
        self._patterns: list[re.Pattern[str]] = []
        for entry in blocklist:
            if isinstance(entry, re.Pattern):
                self._patterns.append(entry)
            elif entry.split():
                phrases.append(entry)
            else:
                raise ConfigError("the blocklist holds an empty phrase; remove it")
        if release not in ("word", "sentence"):
            raise ConfigError(f"release must be 'word' or 'sentence', got {release!r}")
        if release == "word" and self._patterns:
            raise ConfigError(
                "a compiled blocklist pattern cannot be matched on a reply word by word; "
                "give plain phrases or use release='sentence'"
            )
        self._prefixes = PhrasePrefixes(phrases) if release == "word" else None
        if phrases:
            alternatives = sorted(phrases, key=len, reverse=True)
            self._patterns.insert(
                0, re.compile("|".join(map(_phrase_pattern, alternatives)), re.IGNORECASE)
            )
        missing = {"en", "zh"} - {language for language, text in replacements.items() if text}
        if missing:
            raise ConfigError(f"give a replacement sentence for {', '.join(sorted(missing))}")
        self._replacements = dict(replacements)
        longest = max(map(len, phrases), default=0)
        self._max_hold = max_hold
        self._keep = min(max_hold // 2, max(_PII_REACH, longest))
        self.splitter()  # refuses a bad max_hold now rather than on the first reply

    def splitter(self) -> SentenceSplitter:
        """A splitter whose cuts spare personal data and blocklisted phrases."""
        return SentenceSplitter(
            max_hold=self._max_hold,
            keep=self._keep,
            protect=self._spans,
            hold_back=None if self._prefixes is None else self._hold_back,
        )

    def filter(self, language: Language) -> ReplyFilter:
        """A fresh sans-I/O filter for one reply."""
        return ReplyFilter(self, language)

    async def guard(
        self, stream: AsyncIterator[str], language: Language
    ) -> AsyncGenerator[str, None]:
        """`stream` with each sentence checked, as soon as it is complete.

        Safe to cancel, and closing it (`aclose`) closes `stream` too: whatever way the
        guard ends, it awaits `stream.aclose()` where `stream` has one. Close it (for
        instance with `contextlib.aclosing`) rather than drop it, so the upstream is
        released at once rather than when the guard is collected.
        """
        reply = self.filter(language)
        try:
            async for chunk in stream:
                if text := reply.feed(chunk):
                    yield text
            if text := reply.finish():
                yield text
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    def check_sentence(self, sentence: str, language: Language) -> str:
        """One sentence as the guard lets it through: redacted, or replaced if blocklisted."""
        if self.is_blocked(sentence):
            return self.replace(sentence, language)
        return redact(sentence)

    def is_blocked(self, text: str) -> bool:
        scan = text.translate(FULLWIDTH)
        return any(pattern.search(scan) for pattern in self._patterns)

    def replace(self, sentence: str, language: Language) -> str:
        """The replacement, after the whitespace that `sentence` began with."""
        lead = sentence[: len(sentence) - len(sentence.lstrip())]
        return lead + self._replacements[language]

    def _hold_back(self, held: str) -> int:
        assert self._prefixes is not None
        return max(personal_data_tail(held), self._prefixes.tail(held))

    def _spans(self, text: str) -> list[Span]:
        spans = [(match.start, match.end) for match in find_pii(text)]
        scan = text.translate(FULLWIDTH)
        for pattern in self._patterns:
            spans += (
                match.span() for match in pattern.finditer(scan) if match.end() > match.start()
            )
        return spans


def _phrase_pattern(phrase: str) -> str:
    words = phrase.translate(FULLWIDTH).split()
    body = r"\s+".join(map(re.escape, words))
    left = r"(?<![0-9A-Za-z])" if _is_ascii_alnum(words[0][0]) else ""
    right = r"(?![0-9A-Za-z])" if _is_ascii_alnum(words[-1][-1]) else ""
    return f"(?:{left}{body}{right})"


def _is_ascii_alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()
