"""Chat prompts for an LLM: the decision, the emotion and the conversation, within a budget.

`PromptBuilder.messages` turns a `GenerationRequest` into OpenAI-format chat messages:

1. one system message: the system prompt file (`{persona}` in it becomes the persona
   name), then a short block on how to answer this turn: the strategy and tone as
   instructions, the emotion reading (dominant emotion, intensity band, valence), the
   user's history (`HistorySummary.describe()`) and the reply language; the block is
   written in the turn's language;
2. the earlier exchanges, oldest first, as alternating user and assistant messages;
3. the current user message.

The whole prompt stays within `PromptSettings.prompt_budget` tokens, as counted by the
builder's `count_tokens` plus a fixed overhead per message. When it would not, the oldest
exchanges go first and one line in the system message says what they were ("Earlier in
this conversation: 4 exchanges, not shown; the user mostly felt annoyance (anger)"). The
system prompt and the current message are never dropped; a current message too long on
its own is cut in the middle, where a marker says so.

Pure: the system prompt file is read once, when the builder is made. Its HTML comments
(`<!-- ... -->`) are notes for the people who edit it, removed before the model sees it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.emotion.labels import EKMAN_OF
from agent.errors import ConfigError
from agent.generation.base import GenerationRequest
from agent.generation.template_text import FEELING_WORDS
from agent.language import Language
from agent.values import Action, EmotionReading, Exchange, Strategy, Tone

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "STRATEGY_INSTRUCTIONS",
    "TONE_INSTRUCTIONS",
    "TRUNCATION_MARKER",
    "PromptBuilder",
    "PromptSettings",
    "approx_tokens",
]

DEFAULT_SYSTEM_PROMPT = Path(__file__).parent / "persona" / "system.md"
TRUNCATION_MARKER = " […] "
# Notes for the people who edit a system prompt file; the model never sees them.
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)

Message = dict[str, str]


def approx_tokens(text: str) -> int:
    """About how many tokens `text` is, for English and Chinese alike, without a tokenizer.

    Each CJK character (ideographs, kana, hangul, CJK and full-width punctuation) counts
    as one token, and every other four characters as one, rounded up. BPE tokenizers of
    current chat models give about four characters of English per token and one to one
    and a half Chinese characters per token, so this errs on the high side for Chinese
    and is close for English prose; code, digits and rare scripts can run over it. Pass
    a real tokenizer's count to `PromptBuilder` where an exact budget matters.
    """
    cjk = len(_WIDE.findall(text)) if _WIDE_HINT.search(text) else 0
    return cjk + math.ceil((len(text) - cjk) / 4)


# Ideographs, kana, hangul, CJK and full-width punctuation: one token per character.
_WIDE = re.compile(
    "[\u2e80-\u9fff"  # CJK radicals, punctuation, kana, ideographs
    "\uac00-\ud7af"  # hangul
    "\uf900-\ufaff"  # compatibility ideographs
    "\uff00-\uffef"  # full-width forms
    "\U00020000-\U0003ffff]"  # ideograph extensions
)
# Any character past U+2E7F: a text without one (most English) has no wide character.
_WIDE_HINT = re.compile("[^\x00-\u2e7f]")


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptSettings:
    """Where the system prompt lives and how many tokens a prompt may take.

    `max_prompt_tokens` is this turn's share of the model's context; `reply_tokens` of it
    stay free for the reply, so the messages take at most `prompt_budget` tokens.
    `message_overhead_tokens` is what a chat template adds around each message.
    """

    system_prompt: Path = DEFAULT_SYSTEM_PROMPT
    persona_name: str = "Heartline"
    # Limits
    max_prompt_tokens: int = 2048
    reply_tokens: int = 256
    message_overhead_tokens: int = 4

    def __post_init__(self) -> None:
        if not self.persona_name.strip():
            raise ConfigError("persona_name is empty; give the assistant a name")
        if self.reply_tokens < 1 or self.message_overhead_tokens < 0:
            raise ConfigError(
                "reply_tokens must be at least 1 and message_overhead_tokens at least 0"
            )
        if self.max_prompt_tokens <= self.reply_tokens:
            raise ConfigError(
                f"max_prompt_tokens ({self.max_prompt_tokens}) must exceed reply_tokens "
                f"({self.reply_tokens}); raise max_prompt_tokens or lower reply_tokens"
            )

    @property
    def prompt_budget(self) -> int:
        """The most tokens the messages may take."""
        return self.max_prompt_tokens - self.reply_tokens


STRATEGY_INSTRUCTIONS: Mapping[tuple[Strategy, Language], str] = {
    (Strategy.EMPATHIZE, "en"): (
        "Acknowledge how the user feels and show that you understand before anything else."
    ),
    (Strategy.APOLOGIZE, "en"): (
        "Start by apologising sincerely for the trouble, then say how you will put it right."
    ),
    (Strategy.REASSURE, "en"): (
        "Reassure the user: the problem can be solved, and you will guide them step by step."
    ),
    (Strategy.INFORM, "en"): (
        "Answer clearly and concretely; ask for a missing detail only if you really need it."
    ),
    (Strategy.CLARIFY, "en"): (
        "Ask one short question to understand what the user needs before you answer."
    ),
    (Strategy.ENCOURAGE, "en"): (
        "Encourage the user: recognise their progress and suggest the next step."
    ),
    (Strategy.CELEBRATE, "en"): "Share the user's good news with genuine warmth; keep it short.",
    (Strategy.DE_ESCALATE, "en"): (
        "Calm things down: acknowledge the frustration without arguing, take responsibility "
        "and offer one concrete next step."
    ),
    (Strategy.EMPATHIZE, "zh"): "先体会并说出用户的感受，表达理解，再谈其他。",
    (Strategy.APOLOGIZE, "zh"): "先真诚地为给用户带来的麻烦道歉，再说明你会怎样解决。",
    (Strategy.REASSURE, "zh"): "安抚用户：问题可以解决，你会一步一步带着他们处理。",
    (Strategy.INFORM, "zh"): "清楚、具体地回答；只有确实缺少信息时才追问。",
    (Strategy.CLARIFY, "zh"): "回答之前，先问一个简短的问题，弄清楚用户需要什么。",
    (Strategy.ENCOURAGE, "zh"): "鼓励用户：肯定他们的进展，并建议下一步。",
    (Strategy.CELEBRATE, "zh"): "真诚地为用户的好消息感到高兴，简短即可。",
    (
        Strategy.DE_ESCALATE,
        "zh",
    ): "缓和气氛：承认用户的不满，不争辩，主动承担，并给出一个具体的下一步。",
}

TONE_INSTRUCTIONS: Mapping[tuple[Tone, Language], str] = {
    (Tone.WARM, "en"): "Sound warm and personal.",
    (Tone.CALM, "en"): "Sound calm and steady, in short, simple sentences.",
    (Tone.NEUTRAL, "en"): "Sound neutral and professional.",
    (Tone.UPBEAT, "en"): "Sound upbeat and positive.",
    (Tone.WARM, "zh"): "温暖、亲切。",
    (Tone.CALM, "zh"): "平静、稳重，句子简短。",
    (Tone.NEUTRAL, "zh"): "中立、专业。",
    (Tone.UPBEAT, "zh"): "积极、轻快。",
}

_ACTION_INSTRUCTIONS: Mapping[tuple[Action, Language], str] = {
    (Action.HANDOFF, "en"): "A human colleague will take over: tell the user so, kindly.",
    (Action.END, "en"): "The conversation is ending: close it kindly.",
    (Action.HANDOFF, "zh"): "人工客服将接手：请友好地告诉用户。",
    (Action.END, "zh"): "对话即将结束：请友好地收尾。",
}

# The lines of the turn block, per language.
_TEXT: Mapping[Language, Mapping[str, str]] = {
    "en": {
        "heading": "## How to answer this turn",
        "approach": "- Approach: {}",
        "tone": "- Tone: {}",
        "emotion": "- The user's main emotion: {feeling}; intensity {band}, valence {valence}.",
        "history": "- About the user: {}.",
        "earlier": "- Earlier in this conversation: {count} {unit}, not shown{feelings}.",
        "exchange": "exchange",
        "exchanges": "exchanges",
        "earlier_feelings": "; the user mostly felt {}",
        "separator": ", ",
        "language": "- Reply in English.",
        "low": "low",
        "moderate": "moderate",
        "high": "high",
        "negative": "negative",
        "neutral": "neutral",
        "positive": "positive",
    },
    "zh": {
        "heading": "## 本轮如何回答",
        "approach": "- 方式：{}",
        "tone": "- 语气：{}",
        "emotion": "- 用户的主要情绪：{feeling}；强度{band}，{valence}。",
        "history": "- 用户情况：{}。",
        "earlier": "- 此前的对话：{count}{unit}，未显示{feelings}。",
        "exchange": "轮",
        "exchanges": "轮",
        "earlier_feelings": "；用户主要感到{}",
        "separator": "、",
        "language": "- 请用简体中文回答。",
        "low": "低",
        "moderate": "中等",
        "high": "高",
        "negative": "负面",
        "neutral": "中性",
        "positive": "正面",
    },
}


class PromptBuilder:
    """Builds the chat messages for one turn; reusable and safe to share between turns."""

    def __init__(
        self,
        settings: PromptSettings | None = None,
        count_tokens: Callable[[str], int] = approx_tokens,
    ) -> None:
        self._settings = settings or PromptSettings()
        self._count = count_tokens
        self._system_prompt = _load_system_prompt(self._settings)
        self._check_fits(self._system_prompt)

    @property
    def settings(self) -> PromptSettings:
        return self._settings

    @property
    def system_prompt(self) -> str:
        """The system prompt file's text, persona name filled in."""
        return self._system_prompt

    def count(self, messages: Sequence[Mapping[str, str]]) -> int:
        """The tokens `messages` take: their contents plus the overhead of each message."""
        return sum(self._cost(message["content"]) for message in messages)

    def messages(self, request: GenerationRequest) -> list[Message]:
        """The system message, the exchanges that fit (newest kept) and the current message.

        Raises `ConfigError` when the system message and a cut-down current message
        together do not fit the budget: the settings, not the turn, are at fault.
        """
        budget = self._settings.prompt_budget
        lines = self._turn_lines(request)
        pairs = [_pair(exchange) for exchange in request.conversation]
        system, kept = self._fit_history(request, lines, pairs)
        text = request.text
        if self._cost(system) + self._cost(text) > budget:
            text = self._truncate(text, budget - self._cost(system), system)
        history = [message for pair in pairs[len(pairs) - kept :] for message in pair]
        return [
            {"role": "system", "content": system},
            *history,
            {"role": "user", "content": text},
        ]

    def _fit_history(
        self, request: GenerationRequest, lines: list[str], pairs: list[tuple[Message, Message]]
    ) -> tuple[str, int]:
        """The system message and how many of the newest exchanges fit beside it.

        The exchanges left out are summarised in the system message, which costs room:
        more go until the summary fits too; if it never does, it is left out.
        """
        budget = self._settings.prompt_budget
        system = self._system(lines, None)
        fixed = self._cost(system) + self._cost(request.text)
        costs = [
            self._cost(user["content"]) + self._cost(reply["content"]) for user, reply in pairs
        ]
        kept, used = 0, 0
        for cost in reversed(costs):
            if fixed + used + cost > budget:
                break
            kept, used = kept + 1, used + cost
        if kept == len(pairs):
            return system, kept
        fewer, less = kept, used
        while True:
            summary = _summary(request.conversation[: len(pairs) - fewer], request.language)
            summarised = self._system(lines, summary)
            if self._cost(summarised) + self._cost(request.text) + less <= budget:
                return summarised, fewer
            if fewer == 0:
                return system, kept
            fewer -= 1
            less -= costs[len(pairs) - fewer - 1]

    def _cost(self, content: str) -> int:
        return self._count(content) + self._settings.message_overhead_tokens

    def _system(self, lines: list[str], summary: str | None) -> str:
        if summary is not None:
            lines = [*lines[:-1], summary, lines[-1]]
        return "\n".join([self._system_prompt, "", *lines])

    def _turn_lines(self, request: GenerationRequest) -> list[str]:
        language = request.language
        text = _TEXT[language]
        decision = request.decision
        lines = [text["heading"]]
        if decision.action is not Action.REPLY:
            lines.append(text["approach"].format(_ACTION_INSTRUCTIONS[(decision.action, language)]))
        lines.append(text["approach"].format(STRATEGY_INSTRUCTIONS[(decision.strategy, language)]))
        lines.append(text["tone"].format(TONE_INSTRUCTIONS[(decision.tone, language)]))
        lines.append(_emotion_line(request.emotion, language))
        lines.append(text["history"].format(request.history.describe()))
        lines.append(text["language"])
        return lines

    def _truncate(self, text: str, room: int, system: str) -> str:
        """`text` cut in the middle, marked, to the longest that takes at most `room`."""
        if self._cost(TRUNCATION_MARKER) > room:
            raise ConfigError(self._too_small(system))
        low, high = 0, len(text)  # low always fits, high does not
        while high - low > 1:
            middle = (low + high) // 2
            if self._cost(_cut_middle(text, middle)) <= room:
                low = middle
            else:
                high = middle
        return _cut_middle(text, low)

    def _check_fits(self, system_prompt: str) -> None:
        if self._cost(system_prompt) + self._cost(TRUNCATION_MARKER) > self._settings.prompt_budget:
            raise ConfigError(self._too_small(system_prompt))

    def _too_small(self, system: str) -> str:
        settings = self._settings
        return (
            f"the system message takes {self._cost(system)} tokens, more than a prompt budget "
            f"of {settings.prompt_budget} (max_prompt_tokens {settings.max_prompt_tokens} "
            f"minus reply_tokens {settings.reply_tokens}) leaves room for; raise "
            f"max_prompt_tokens or shorten {settings.system_prompt}"
        )


def _load_system_prompt(settings: PromptSettings) -> str:
    path = settings.system_prompt
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"cannot read the system prompt file {path}: {reason}; point "
            f"PromptSettings.system_prompt at a readable UTF-8 file "
            f"(the shipped default is {DEFAULT_SYSTEM_PROMPT})"
        ) from exc
    text = _COMMENT.sub("", text).strip()
    if not text:
        raise ConfigError(f"the system prompt file {path} is empty; write the system prompt in it")
    return text.replace("{persona}", settings.persona_name)


def _pair(exchange: Exchange) -> tuple[Message, Message]:
    return {"role": "user", "content": exchange.text}, {
        "role": "assistant",
        "content": exchange.reply,
    }


def _emotion_line(emotion: EmotionReading, language: Language) -> str:
    text = _TEXT[language]
    band = (
        "low" if emotion.intensity < 1 / 3 else "moderate" if emotion.intensity < 2 / 3 else "high"
    )
    valence = (
        "negative" if emotion.valence < -0.2 else "positive" if emotion.valence > 0.2 else "neutral"
    )
    return text["emotion"].format(
        feeling=_feeling(emotion.dominant, language), band=text[band], valence=text[valence]
    )


def _feeling(label: str, language: Language) -> str:
    """A label as the prompt names it: "annoyance (anger)"; in Chinese, "烦躁" where known."""
    if language == "zh":
        return FEELING_WORDS["zh"].get(label, label)
    group = EKMAN_OF.get(label)
    return f"{label} ({group})" if group not in (None, label, "neutral") else label


def _summary(dropped: Sequence[Exchange], language: Language) -> str:
    """One line for the exchanges left out: how many, and the feelings most seen in them."""
    text = _TEXT[language]
    feelings = Counter(
        exchange.emotion.dominant
        for exchange in dropped
        if exchange.emotion is not None and exchange.emotion.dominant != "neutral"
    )
    common = [_feeling(label, language) for label, _ in feelings.most_common(2)]
    return text["earlier"].format(
        count=len(dropped),
        unit=text["exchange" if len(dropped) == 1 else "exchanges"],
        feelings=text["earlier_feelings"].format(text["separator"].join(common)) if common else "",
    )


def _cut_middle(text: str, keep: int) -> str:
    """The first and last `keep` characters between them, the marker in the middle."""
    head = (keep + 1) // 2
    return text[:head] + TRUNCATION_MARKER + text[len(text) - (keep - head) :]
