"""The template generator: the offline default and the fallback when an LLM fails.

Replies are conditioned on the decision (action, strategy) and the dominant
emotion, in the turn's language, and rotate through variants so one session
does not hear the same sentence twice in a row. The rotation reads the session's
last reply from the request's conversation, so the generator keeps no state per
session.
"""

from __future__ import annotations

import asyncio
import re
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

    def __init__(self, *, token_delay: float = 0.0) -> None:
        self._token_delay = token_delay

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
        replies = [variant.format(feeling=feeling or "") for variant in variants]
        last = request.conversation[-1].reply if request.conversation else None
        return _after(last, replies)

    async def open(self, request: GenerationRequest) -> ReplyStream:
        """The composed reply, streamed piece by piece; never unavailable."""
        pieces = split_for_streaming(self.compose(request), request.language)
        return ReplyStream(answered_by=self.name, pieces=self._stream(pieces))

    async def _stream(self, pieces: list[str]) -> AsyncGenerator[str, None]:
        for piece in pieces:
            yield piece
            await asyncio.sleep(self._token_delay)


def _after(last: str | None, replies: list[str]) -> str:
    """The reply after the one the session heard last; the first when it heard none of them."""
    start = replies.index(last) + 1 if last in replies else 0
    return replies[start % len(replies)]
