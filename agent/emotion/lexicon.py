"""The lexicon recognizer: no model, bilingual, instant — the floor and the fallback."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from agent.emotion.labels import LABELS, NEUTRAL, SENTIMENT_OF, reading_from
from agent.emotion.lexicon_words import EN_CUES, NEGATIONS_EN, NEGATIONS_ZH, ZH_CUES
from agent.values import EmotionReading

__all__ = ["LexiconRecognizer"]

_INTENSIFIERS = frozenset(
    ("very", "so", "really", "extremely", "totally", "super", "太", "非常", "好", "超级")
)
_NEUTRAL_MASS = 0.5
_EN_WORD = re.compile(r"[a-z']+")


def _cue_index(cues: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    index: dict[str, tuple[str, ...]] = {}
    for label, words in cues.items():
        for word in words:
            index[word] = (*index.get(word, ()), label)
    return index


def _pattern(index: Mapping[str, object], *, words: bool) -> re.Pattern[str]:
    parts = []
    for cue in sorted(index, key=len, reverse=True):
        body = re.escape(cue.rstrip("*")) + (r"\w*" if cue.endswith("*") else "")
        parts.append(rf"(?<![\w']){body}(?![\w'])" if words else body)
    return re.compile("|".join(parts), re.IGNORECASE)


class LexiconRecognizer:
    """Cue words per label, with negation and intensifiers; English and Chinese at once."""

    name = "lexicon-v1"

    def __init__(self) -> None:
        self._en = _cue_index(EN_CUES)
        self._zh = _cue_index(ZH_CUES)
        self._en_pattern = _pattern(self._en, words=True)
        self._zh_pattern = _pattern(self._zh, words=False)

    async def read_batch(self, texts: Sequence[str]) -> list[EmotionReading]:
        """Instant, so it runs inline: no worker thread needed."""
        return self.predict(texts)

    def predict(self, texts: Sequence[str]) -> list[EmotionReading]:
        return [self.read(text) for text in texts]

    def read(self, text: str) -> EmotionReading:
        weights = dict.fromkeys(LABELS, 0.0)
        for label, weight in self._hits(text):
            weights[label] += weight
        if "!" in text or "！" in text or (len(text) > 3 and text.isupper()):
            weights = {label: w * 1.3 for label, w in weights.items()}
        total = sum(weights.values())
        weights[NEUTRAL] += _NEUTRAL_MASS if total else 1.0
        total = sum(weights.values())
        return reading_from({label: w / total for label, w in weights.items()}, model=self.name)

    def _hits(self, text: str) -> list[tuple[str, float]]:
        hits: list[tuple[str, float]] = []
        lowered = text.lower()
        for match in self._en_pattern.finditer(lowered):
            before = _EN_WORD.findall(lowered[max(0, match.start() - 40) : match.start()])[-3:]
            negated = any(word in NEGATIONS_EN for word in before)
            boost = 1.5 if before and before[-1] in _INTENSIFIERS else 1.0
            hits.extend(_weigh(self._labels(self._en, match.group()), negated, boost))
        for match in self._zh_pattern.finditer(text):
            preceding = text[max(0, match.start() - 2) : match.start()]
            negated = any(word in preceding for word in NEGATIONS_ZH)
            boost = 1.5 if any(word in preceding for word in _INTENSIFIERS) else 1.0
            hits.extend(_weigh(self._zh[match.group()], negated, boost))
        return hits

    @staticmethod
    def _labels(index: Mapping[str, tuple[str, ...]], found: str) -> tuple[str, ...]:
        if found in index:
            return index[found]
        return next(
            labels
            for cue, labels in index.items()
            if cue.endswith("*") and found.startswith(cue[:-1])
        )


def _weigh(labels: tuple[str, ...], negated: bool, boost: float) -> list[tuple[str, float]]:
    """A negated positive cue reads as disappointment; a negated negative one as nothing."""
    if not negated:
        return [(label, boost) for label in labels]
    if any(SENTIMENT_OF[label] == "positive" for label in labels):
        return [("disappointment", boost)]
    return []
