"""The template generator: the offline default and the fallback when an LLM fails.

Replies are conditioned on the decision (action, strategy) and the dominant
emotion, in the turn's language, and rotate through variants so one session
does not hear the same sentence twice in a row.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import AsyncGenerator

from agent.generation.base import GenerationRequest, ReplyStream
from agent.generation.template_text import ACTION_TEMPLATES, FEELING_WORDS, STRATEGY_TEMPLATES
from agent.language import Language
from agent.values import Action
from policies.crisis_terms import CrisisCategory
from policies.safety import SAFETY_PREFIX, safe_message

__all__ = ["TemplateGenerator", "split_for_streaming"]

_EN_PIECE = re.compile(r"\S+\s*")


def split_for_streaming(text: str, language: Language) -> list[str]:
    """Token-sized pieces: words (with their trailing space) or pairs of characters."""
    if language == "zh":
        return [text[i : i + 2] for i in range(0, len(text), 2)]
    return _EN_PIECE.findall(text)


class TemplateGenerator:
    """Streams a templated reply piece by piece; never touches the network."""

    name = "template"

    def __init__(self, *, token_delay: float = 0.0, max_sessions: int = 10_000) -> None:
        self._token_delay = token_delay
        self._last_variant: OrderedDict[str, int] = OrderedDict()
        self._max_sessions = max_sessions

    def compose(self, request: GenerationRequest) -> str:
        language = request.language
        decision = request.decision
        crisis = decision.policy.removeprefix(SAFETY_PREFIX)
        if crisis != decision.policy and crisis in set(CrisisCategory):
            # A crisis gets the safe-messaging text, never a variant of a template.
            return safe_message(CrisisCategory(crisis), language)
        if decision.action is Action.REPLY:
            variants = STRATEGY_TEMPLATES[(decision.strategy, language)]
        else:
            variants = ACTION_TEMPLATES[(decision.action, language)]
        feeling = FEELING_WORDS[language].get(request.emotion.dominant)
        if feeling is None:
            # No word for this feeling: only the variants that do not name one fit.
            variants = tuple(v for v in variants if "{feeling}" not in v)
        chosen = variants[self._next_variant(request.session_id, len(variants))]
        return chosen.format(feeling=feeling or "")

    async def open(self, request: GenerationRequest) -> ReplyStream:
        """The composed reply, streamed piece by piece; never unavailable."""
        pieces = split_for_streaming(self.compose(request), request.language)
        return ReplyStream(answered_by=self.name, pieces=self._stream(pieces))

    async def _stream(self, pieces: list[str]) -> AsyncGenerator[str, None]:
        for piece in pieces:
            yield piece
            await asyncio.sleep(self._token_delay)

    def _next_variant(self, session_id: str, count: int) -> int:
        last = self._last_variant.pop(session_id, -1)
        chosen = (last + 1) % count
        self._last_variant[session_id] = chosen
        if len(self._last_variant) > self._max_sessions:
            self._last_variant.popitem(last=False)
        return chosen
