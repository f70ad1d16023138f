"""Language routing: each text to its language's recognizer, the lexicon when there is none.

English and Chinese need different models (the MiniLM tokenizer maps most
Chinese characters to [UNK]). The language is detected per text, so one
batch may mix both; each language's texts go to its recognizer in one call,
and the readings come back in the caller's order. A language with no model,
or whose model fails, is read by the fallback: a turn is better read by the
lexicon than not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog

from agent.emotion.base import EmotionRecognizer
from agent.language import Language, detect_language
from agent.values import EmotionReading

__all__ = ["LanguageRouter"]

_log = structlog.get_logger(__name__)


class LanguageRouter:
    """An `EmotionRecognizer` that sends each text to the recognizer of its language."""

    def __init__(
        self, models: Mapping[Language, EmotionRecognizer], fallback: EmotionRecognizer
    ) -> None:
        self._models = dict(models)
        self._fallback = fallback

    @property
    def name(self) -> str:
        routes = ",".join(f"{lang}={model.name}" for lang, model in sorted(self._models.items()))
        return f"router({routes};fallback={self._fallback.name})"

    async def read_batch(self, texts: Sequence[str]) -> list[EmotionReading]:
        """One reading per text, in order; one call per language, one after the other.

        Safe to cancel. Raises only what the fallback raises.
        """
        groups: dict[Language, list[int]] = {}
        for index, text in enumerate(texts):
            groups.setdefault(detect_language(text), []).append(index)
        readings: list[EmotionReading | None] = [None] * len(texts)
        for language, indices in groups.items():
            batch = [texts[i] for i in indices]
            for index, reading in zip(indices, await self._read(language, batch), strict=True):
                readings[index] = reading
        return [reading for reading in readings if reading is not None]

    async def _read(self, language: Language, texts: list[str]) -> list[EmotionReading]:
        model = self._models.get(language)
        if model is not None:
            try:
                readings = await model.read_batch(texts)
            except Exception as exc:
                _log.warning(
                    "emotion model failed; reading with the fallback",
                    language=language,
                    model=model.name,
                    error=type(exc).__name__,
                )
            else:
                if len(readings) == len(texts):
                    return readings
                _log.warning(
                    "emotion model gave the wrong number of readings; reading with the fallback",
                    language=language,
                    model=model.name,
                )
        return await self._fallback.read_batch(texts)
