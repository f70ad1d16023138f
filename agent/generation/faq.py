"""FAQ answers: a knowledge file's answer, wrapped in emotional framing.

`FaqGenerator` answers a turn that the knowledge file answers (`faq_index`) with
a short empathic opener chosen from the decision's strategy and the dominant
emotion ("I'm sorry this has been frustrating."), then the answer; on a miss, a
handoff, an end or a safety decision it lets the wrapped generator (the templates)
answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping

import structlog

from agent.emotion.labels import EKMAN_OF
from agent.generation.base import GenerationRequest, Generator, ReplyStream
from agent.generation.faq_index import FaqHit, FaqIndex
from agent.generation.templates import split_for_streaming
from agent.language import Language
from agent.values import Action, Strategy
from policies.safety import SAFETY_PREFIX

__all__ = ["FaqGenerator"]

_log = structlog.get_logger(__name__)

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

    A reply's `answered_by` says which did: "faq", or the wrapped generator's own
    (its answerer, when it is a chain).
    """

    name = "faq"

    def __init__(self, index: FaqIndex, templates: Generator, *, token_delay: float = 0.0) -> None:
        if token_delay < 0:
            raise ValueError("token_delay must not be negative")
        self._index = index
        self._templates = templates
        self._token_delay = token_delay

    def compose(self, request: GenerationRequest, hit: FaqHit) -> tuple[str, str]:
        """The opener (possibly empty) and the answer for a turn the knowledge file answers."""
        opener = _opener(request.decision.strategy, request.emotion.dominant, request.language)
        return opener, hit.answer

    async def open(self, request: GenerationRequest) -> ReplyStream:
        """Safe to cancel: the lookup runs in a worker thread whose result is then dropped."""
        hit = await self._match(request)
        if hit is None:
            return await self._templates.open(request)
        _log.info(
            "faq hit",
            entry=hit.entry_id,
            score=round(hit.score, 3),
            session_id=request.session_id,
            turn_id=request.turn_id,
        )
        return ReplyStream(answered_by=self.name, pieces=self._answer(request, hit))

    async def _answer(self, request: GenerationRequest, hit: FaqHit) -> AsyncGenerator[str, None]:
        for part in self.compose(request, hit):
            for piece in split_for_streaming(part, request.language):
                yield piece
                await asyncio.sleep(self._token_delay)

    async def _match(self, request: GenerationRequest) -> FaqHit | None:
        decision = request.decision
        if decision.action is not Action.REPLY or decision.policy.startswith(SAFETY_PREFIX):
            return None
        return await asyncio.to_thread(self._index.lookup, request.text, request.language)
