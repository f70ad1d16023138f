"""How every text reaches an emotion model: without personal data, and read for its domain.

A model reads a text redacted, and without the placeholders of redacted personal data
(`[EMAIL]`, `[PHONE]`): they say nothing about how its writer feels, and a model trained
on Reddit reads an e-mail address as calm. In the ``support`` domain (the default: people
writing to customer service) the reading is then corrected by the message's cues
(`support`) and, where a head is shipped for the language and model, decided by the
support head (`support_head`); in the ``general`` domain the model's reading stands.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from agent.emotion.base import EmotionModel
from agent.emotion.domain import Domain
from agent.emotion.labels import EKMAN_OF
from agent.emotion.support import marked, read_for_support, with_group
from agent.emotion.support_cues import SupportCues, find_cues
from agent.emotion.support_head import GROUPS, HEADS_DIR, SupportHead, head_features
from agent.language import Language, detect_language
from agent.privacy.redaction import PiiKind, redact
from agent.values import EmotionReading

__all__ = [
    "Readings",
    "SupportReader",
    "for_model",
    "read_with_cues",
    "shipped_heads",
    "without_placeholders",
]

_PLACEHOLDER = re.compile(
    r"\s*(?:" + "|".join(re.escape(kind.placeholder) for kind in PiiKind) + r")\s*"
)


def without_placeholders(text: str) -> str:
    """`text` with the placeholders of redacted personal data taken out.

    A placeholder between two words leaves a space; anywhere else (beside punctuation,
    in Chinese) nothing, as if it had never been written.
    """
    if "[" not in text:
        return text

    def gap(match: re.Match[str]) -> str:
        before = text[match.start() - 1 : match.start()]
        after = text[match.end() : match.end() + 1]
        return (
            " "
            if before.isascii() and before.isalnum() and after.isascii() and after.isalnum()
            else ""
        )

    return _PLACEHOLDER.sub(gap, text).strip()


def for_model(text: str) -> str:
    """What a model may read of `text`: redacted (whoever called forgot to), placeholders out."""
    return without_placeholders(redact(text))


@runtime_checkable
class _Embeds(Protocol):
    def predict_with_embeddings(
        self, texts: Sequence[str]
    ) -> tuple[list[EmotionReading], np.ndarray]: ...


@dataclass(frozen=True, slots=True)
class Readings:
    """What is known of some texts before a head decides: what a head is trained on too."""

    texts: list[str]  # as the model read them: placeholders out
    languages: list[Language]
    read: list[EmotionReading]  # the model's readings
    cues: list[SupportCues]
    corrected: list[EmotionReading]  # the model's readings corrected by the cues
    embeddings: np.ndarray | None  # the model's sentence embeddings, where it gives them


def read_with_cues(model: EmotionModel, texts: Sequence[str]) -> Readings:
    """`model`'s readings of `texts` (placeholders out), and those corrected by their cues."""
    clean = [for_model(text) for text in texts]
    embeddings = None
    if isinstance(model, _Embeds):
        read, embeddings = model.predict_with_embeddings(clean)
    else:
        read = model.predict(clean)
    languages = [detect_language(text) for text in clean]
    cues = [find_cues(text, language) for text, language in zip(clean, languages, strict=True)]
    corrected = [read_for_support(r, c) for r, c in zip(read, cues, strict=True)]
    return Readings(clean, languages, read, cues, corrected, embeddings)


def shipped_heads(model_name: str, root: Path = HEADS_DIR) -> dict[Language, SupportHead]:
    """The heads shipped for a model, by language; none for a model they were not made for."""
    heads: dict[Language, SupportHead] = {}
    if not root.is_dir():
        return heads
    for path in sorted(root.iterdir()):
        if path.is_dir():
            head = SupportHead.load(path)
            if head.config.base_model == model_name:
                heads[head.config.language] = head
    return heads


class SupportReader:
    """An `EmotionModel` that reads `model` as the module docstring says."""

    def __init__(
        self,
        model: EmotionModel,
        *,
        domain: Domain = "support",
        heads: Mapping[Language, SupportHead] | None = None,
    ) -> None:
        self._model = model
        self._domain = domain
        self._heads = dict(heads or {})

    @property
    def name(self) -> str:
        return marked(self._model.name) if self._domain == "support" else self._model.name

    @property
    def domain(self) -> Domain:
        return self._domain

    @property
    def heads(self) -> dict[Language, SupportHead]:
        return dict(self._heads)

    def predict(self, texts: Sequence[str]) -> list[EmotionReading]:
        """One reading per text, in order. CPU-bound; never call it on the event loop."""
        if self._domain == "general":
            return self._model.predict([for_model(text) for text in texts])
        readings = read_with_cues(self._model, texts)
        out = list(readings.corrected)
        for language, head in self._heads.items():
            # Where the cues are decisive the corrected reading stands: the head weighs
            # likelihoods, and "I am livid." is not a matter of likelihood.
            rows = [
                i
                for i, lang in enumerate(readings.languages)
                if lang == language and not readings.cues[i].decisive
            ]
            if rows:
                self._decide(head, rows, readings, out)
        name = marked(self._model.name)
        return [
            reading if reading.model == name else replace(reading, model=name) for reading in out
        ]

    @staticmethod
    def _decide(
        head: SupportHead, rows: list[int], readings: Readings, out: list[EmotionReading]
    ) -> None:
        """The head names each row's group; a reading of another group turns to it."""
        features = head_features(
            head.config,
            [readings.texts[i] for i in rows],
            [readings.read[i] for i in rows],
            [readings.corrected[i] for i in rows],
            None if readings.embeddings is None else readings.embeddings[rows],
        )
        for i, probabilities in zip(rows, head.probabilities(features), strict=True):
            group = GROUPS[int(probabilities.argmax())]
            if EKMAN_OF[out[i].dominant] != group:
                out[i] = with_group(out[i], group, float(probabilities.max()))
