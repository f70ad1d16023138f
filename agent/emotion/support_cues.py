"""What the words of a support message say, before any model reads it.

`find_cues` reports the cued labels (negation taken into account), irony about a bad
event, thanks with a complaint, a problem put right, and whether the message reads as
a plain request. It runs on every turn, so it walks the text once per word list:
English by dictionary look-ups of words, word prefixes (`annoy*`) and two- and
three-word phrases; Chinese, written without spaces, by substring search. One regular
expression per word list took about 40 times as long.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache

from agent.emotion.labels import EKMAN_OF
from agent.emotion.support_words import (
    BAD_EVENTS,
    CONTRASTS,
    CUES,
    FIXED,
    POLITE,
    PRAISE,
    REQUESTS,
    STRONG,
    THANKS,
)
from agent.language import Language

__all__ = ["SupportCues", "find_cues"]

_NEGATIONS_EN = frozenset(("not", "no", "never", "don't", "didn't", "isn't", "wasn't", "nothing"))
_NEGATIONS_ZH = ("不", "没", "别", "无")
_EN_TOKEN = re.compile(r"[a-z0-9']+|[^\sa-z0-9']")
_NEGATIVE_GROUPS = frozenset(("anger", "disgust", "fear", "sadness"))
_ENDS_ASKING = ("?", "？", "吗", "呢")


@dataclass(frozen=True, slots=True)
class SupportCues:
    """The cues of one message; `labels` maps each cued label to its strength."""

    labels: Mapping[str, float]
    ironic: bool
    complains: bool
    fixed: bool
    request: bool
    emphatic: bool

    @property
    def negative(self) -> bool:
        return any(EKMAN_OF[label] in _NEGATIVE_GROUPS for label in self.labels)

    @property
    def decisive(self) -> bool:
        """Said outright: irony, thanks with a complaint, or a word that leaves no doubt."""
        return self.ironic or self.complains or max(self.labels.values(), default=0.0) >= STRONG


@dataclass(frozen=True, slots=True)
class _Text:
    """A message as the word lists see it: English tokens, or the Chinese characters."""

    language: Language
    text: str
    tokens: list[str]

    @classmethod
    def of(cls, text: str, language: Language) -> _Text:
        if language == "zh":
            for phrase in POLITE["zh"]:  # 麻烦 holds 烦, and means nothing felt
                text = text.replace(phrase, "\u3000" * len(phrase))
            return cls(language, text, [])
        lowered = text.lower()
        return cls(language, lowered, _EN_TOKEN.findall(lowered))

    def negated(self, position: int) -> bool:
        if self.language == "zh":
            return any(n in self.text[max(0, position - 2) : position] for n in _NEGATIONS_ZH)
        return any(t in _NEGATIONS_EN for t in self.tokens[max(0, position - 3) : position])


# What a phrase is, in the one table of its language: a cue (its index in `CUES`) or a
# member of one of the other word lists (the list's name).
_Tag = int | str
_LISTS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "praise": PRAISE,
    "bad_events": BAD_EVENTS,
    "fixed": FIXED,
    "thanks": THANKS,
    "contrasts": CONTRASTS,
    "requests": REQUESTS,
}
_CUE_LABELS = tuple((cue.label, cue.strength) for cue in CUES)


def _entries(language: Language) -> Iterator[tuple[str, _Tag]]:
    for index, cue in enumerate(CUES):
        for phrase in CUES[cue][language]:
            yield phrase, index
    for name, words in _LISTS.items():
        for phrase in words[language]:
            yield phrase, name


class _WordTable:
    """English phrases as look-up tables; a match's position is its first token's index."""

    def __init__(self, entries: Iterable[tuple[str, _Tag]]) -> None:
        self._exact: dict[tuple[str, ...], list[_Tag]] = {}
        self._prefixes: dict[str, list[_Tag]] = {}
        self._marks: dict[str, list[_Tag]] = {}  # phrases with punctuation ("what?")
        for phrase, tag in entries:
            if phrase.endswith("*"):
                self._prefixes.setdefault(phrase[:-1], []).append(tag)
            elif all(_EN_TOKEN.fullmatch(token) for token in phrase.split()):
                self._exact.setdefault(tuple(phrase.split()), []).append(tag)
            else:
                self._marks.setdefault(phrase, []).append(tag)
        self._longest = max((len(words) for words in self._exact), default=1)
        self._prefix_lengths = sorted({len(prefix) for prefix in self._prefixes})

    def find(self, text: _Text) -> Iterator[tuple[_Tag, int]]:
        tokens = text.tokens
        for position, token in enumerate(tokens):
            for length in range(1, self._longest + 1):
                for tag in self._exact.get(tuple(tokens[position : position + length]), ()):
                    yield tag, position
            for length in self._prefix_lengths:
                if len(token) >= length:
                    for tag in self._prefixes.get(token[:length], ()):
                        yield tag, position
        for mark, tags in self._marks.items():
            if (start := text.text.find(mark)) >= 0:
                position = len(_EN_TOKEN.findall(text.text[:start]))
                for tag in tags:
                    yield tag, position


class _SubstringTable:
    """Chinese phrases, matched as substrings; a match's position is its first character.

    Phrases are filed by their first character, so a text is searched only for the
    phrases that can start in it; matches come in the phrases' order, as the cues are
    weighed in it.
    """

    def __init__(self, entries: Iterable[tuple[str, _Tag]]) -> None:
        self._by_first: dict[str, list[tuple[int, str, _Tag]]] = {}
        for order, (phrase, tag) in enumerate(entries):
            self._by_first.setdefault(phrase[0], []).append((order, phrase, tag))

    def find(self, text: _Text) -> Iterator[tuple[_Tag, int]]:
        candidates = (self._by_first[first] for first in self._by_first.keys() & set(text.text))
        for _, phrase, tag in sorted(entry for entries in candidates for entry in entries):
            if (start := text.text.find(phrase)) >= 0:
                yield tag, start


@cache
def _table(language: Language) -> _WordTable | _SubstringTable:
    return (_SubstringTable if language == "zh" else _WordTable)(_entries(language))


def find_cues(text: str, language: Language) -> SupportCues:
    """The cues of `text` (placeholders already taken out)."""
    view = _Text.of(text, language)
    shouts = sum(1 for word in text.split() if len(word) > 2 and word.isupper())
    emphatic = "!" in text or "！" in text or (language != "zh" and shouts >= 2)
    found: dict[str, float] = {}
    lists: dict[str, list[int]] = {name: [] for name in _LISTS}
    for tag, position in _table(language).find(view):
        if isinstance(tag, str):
            lists[tag].append(position)
        elif not view.negated(position):
            label, strength = _CUE_LABELS[tag]
            found[label] = max(found.get(label, 0.0), strength)
    fixed = bool(lists["fixed"])
    thanks = lists["thanks"]
    complains = bool(thanks) and any(p > min(thanks) for p in lists["contrasts"]) and not fixed
    ironic = bool(lists["praise"]) and bool(lists["bad_events"]) and not fixed
    requests = lists["requests"]
    # An English request starts with its request word; a Chinese one may hold it anywhere.
    asked = 0 in requests
    if language == "zh":  # polite phrases are masked from the look-ups, and ask too
        asked = bool(requests) or any(phrase in text for phrase in POLITE["zh"])
    request = not emphatic and (text.rstrip().endswith(_ENDS_ASKING) or asked)
    return SupportCues(found, ironic, complains, fixed, request, emphatic)
