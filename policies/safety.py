"""The safety policy: a crisis in the user's words gets a safe-messaging reply and a human.

A turn that speaks of self-harm or of harming others, in English or Chinese,
is decided here as a handoff with confidence 1.0, whatever the other policies
say; the ensemble gives this policy the last word. Otherwise it abstains.

What a phrase list can and cannot do: it catches the common, explicit ways
of saying it ("I want to kill myself", "不想活了", "I'm going to kill him")
in ordinary spellings, and it is auditable and fast. It misses what is
implied ("I've given away my things", "明天就都结束了"), new slang and
euphemisms, misspellings and deliberate obfuscation ("s u i c i d e"), other
languages and dialects, and it can fire on quoted, reported or fictional
speech. It is a floor, not a detector: a deployment should add a trained
risk classifier and human review, and extend the lists with `extra_terms`.
It leans to false alarms, a needless handoff being cheap next to a missed
crisis: hyperbole such as "气得我想死的心都有了" still hands off, while the
idioms in `policies.crisis_terms.LOOK_ALIKES` and the Chinese "X死了"
intensifiers (笑死我了, 累死了) do not.

Only the current turn is read: an earlier crisis turn was handed off when it
arrived. Reasons name the category and the language, never the user's words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.errors import ConfigError
from agent.language import Language, detect_language
from agent.values import Action, Decision, Strategy, Tone, TurnContext
from policies.crisis_terms import (
    DEFAULT_TERMS,
    LOOK_ALIKES,
    TRADITIONAL_TO_SIMPLIFIED,
    CrisisCategory,
    CrisisTerm,
)

__all__ = [
    "SAFETY_PREFIX",
    "SAFE_MESSAGES",
    "CrisisCategory",
    "CrisisSignal",
    "CrisisTerm",
    "SafetyPolicy",
    "normalize",
    "safe_message",
]

# A safety decision's policy is this prefix and the crisis category.
SAFETY_PREFIX = "safety:"

# Self-harm calls for empathy without judgement; a threat against others for lowering the
# temperature. Both in a calm tone.
_STRATEGIES: Mapping[CrisisCategory, Strategy] = {
    CrisisCategory.SELF_HARM: Strategy.EMPATHIZE,
    CrisisCategory.HARM_TO_OTHERS: Strategy.DE_ESCALATE,
}
# When both are present ("同归于尽"), harm to others decides: more people are at risk.
_URGENCY = (CrisisCategory.HARM_TO_OTHERS, CrisisCategory.SELF_HARM)
_CATEGORY_WORDS = {
    CrisisCategory.SELF_HARM: "self-harm",
    CrisisCategory.HARM_TO_OTHERS: "harm to others",
}
_LANGUAGE_NAMES: Mapping[Language, str] = {"en": "English", "zh": "Chinese"}

SAFE_MESSAGES: Mapping[tuple[CrisisCategory, Language], str] = {
    (CrisisCategory.SELF_HARM, "en"): (
        "I'm really sorry you're going through this, and I'm glad you told me. You don't have "
        "to face it alone: please reach out to someone you trust, or to a crisis line where you "
        "live. If you might act on these thoughts or are in danger now, call your local "
        "emergency number. I'm bringing in a human colleague to talk with you now."
    ),
    (CrisisCategory.HARM_TO_OTHERS, "en"): (
        "It sounds like things are really intense right now, and I want everyone to be safe, "
        "you included. If anyone is in danger right now, please call your local emergency "
        "number. It can help to step away and talk to someone you trust, or to a crisis line "
        "where you live. I'm bringing in a human colleague to talk with you now."
    ),
    (CrisisCategory.SELF_HARM, "zh"): (
        "听到你这么难受，我很难过，也谢谢你愿意告诉我。你不必一个人扛着：请联系你信任的人，"
        "或当地的心理危机干预热线。如果你可能会伤害自己，或者现在有危险，请立即拨打当地的紧急电话。"
        "我现在就请一位人工同事来和你聊。"
    ),
    (CrisisCategory.HARM_TO_OTHERS, "zh"): (
        "听起来你现在非常激动，我希望每个人都平安，也包括你自己。如果有人正面临危险，"
        "请立即拨打当地的紧急电话。先离开让你激动的环境，和你信任的人或当地的心理危机干预热线"
        "聊一聊，会有帮助。我现在就请一位人工同事来和你聊。"
    ),
}


def safe_message(category: CrisisCategory, language: Language) -> str:
    """The safe-messaging reply for a crisis: empathy, people to reach, a human joining.

    It names "your local emergency number" rather than a number that may be
    wrong for the user's country.
    """
    return SAFE_MESSAGES[(category, language)]


@dataclass(frozen=True, slots=True)
class CrisisSignal:
    """A crisis found in a text: what kind, and the language of the phrase that showed it."""

    category: CrisisCategory
    language: Language


_TRANSLATION = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", **TRADITIONAL_TO_SIMPLIFIED})
_INVISIBLE = re.compile(r"[\u00ad\u200b-\u200f\u2060\ufeff]")
_CJK_GAP = re.compile(r"(?<=[\u3400-\u9fff])\s+(?=[\u3400-\u9fff])")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """The text the crisis patterns are written against; see `policies.crisis_terms`."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_TRANSLATION)
    text = _CJK_GAP.sub("", _INVISIBLE.sub("", text))
    return _SPACES.sub(" ", text)


# A negation governs a phrase when it closes the phrase's clause, with only these in between.
_NEGATION_WINDOW = 48
_CLAUSE_BREAK = re.compile(r"[.!?;,:。！？；，、：…\n]|\bbut\b|\bhowever\b|但|可是|不过")
_NEGATED: Mapping[Language, re.Pattern[str]] = {
    "en": re.compile(
        r"(?:\b(?:not|never|no)|n't|\b(?:dont|wont|cant|wouldnt|didnt|isnt|aint))\s+"
        r"(?:(?:really|ever|even|actually|seriously|going\s+to|gonna|want\s+to|wanna|trying\s+to"
        r"|planning\s+(?:to|on)|plan\s+to|thinking\s+(?:of|about)|thought\s+(?:of|about)"
        r"|considering|considered|feel|feeling|be|been|being|am|would|will|have|had|a"
        r"|at\s+all)\s+)*$"
    ),
    # Not 要不 ("how about I just ..."), which is no negation.
    "zh": re.compile(
        r"(?:(?<!要)不|没|别)(?:有|会|想|要|打算|是|再|去|过|敢|可能|至于|真的|真|曾)*$"
    ),
}


def _negated(text: str, start: int, language: Language) -> bool:
    clause = _CLAUSE_BREAK.split(text[max(0, start - _NEGATION_WINDOW) : start])[-1]
    return _NEGATED[language].search(clause) is not None


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        regex = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(
            f"crisis pattern {pattern!r} is not a valid regular expression ({exc}); fix or drop it"
        ) from exc
    if regex.search("") is not None:
        raise ConfigError(
            f"crisis pattern {pattern!r} matches empty text and would fire on every turn; "
            "make it require at least one character"
        )
    return regex


def _blank(match: re.Match[str]) -> str:
    return " " * len(match.group())


class SafetyPolicy:
    """Hands off any turn with a crisis signal; abstains on every other turn.

    `extra_terms` add crisis phrases (a tenant's slang, a dialect);
    `extra_look_alikes` add idioms to ignore. A look-alike switches detection
    off wherever it matches, so keep each one narrow.
    """

    name = "safety"

    def __init__(
        self, *, extra_terms: Sequence[CrisisTerm] = (), extra_look_alikes: Sequence[str] = ()
    ) -> None:
        self._terms = tuple(
            (term, _compile(term.pattern)) for term in (*DEFAULT_TERMS, *extra_terms)
        )
        self._look_alikes = tuple(_compile(p) for p in (*LOOK_ALIKES, *extra_look_alikes))

    def detect(self, text: str) -> tuple[CrisisSignal, ...]:
        """The crisis signals in `text`, most urgent first; empty when there are none."""
        clean = normalize(text)
        for look_alike in self._look_alikes:
            clean = look_alike.sub(_blank, clean)
        found: set[CrisisSignal] = set()
        for term, regex in self._terms:
            signal = CrisisSignal(term.category, term.language)
            if signal in found:
                continue
            if any(
                not (term.negatable and _negated(clean, match.start(), term.language))
                for match in regex.finditer(clean)
            ):
                found.add(signal)
        return tuple(sorted(found, key=lambda s: (_URGENCY.index(s.category), s.language != "en")))

    def decide(self, context: TurnContext) -> Decision | None:
        signals = self.detect(context.text)
        if not signals:
            return None
        category = signals[0].category
        reply_language = _LANGUAGE_NAMES[detect_language(context.text)]
        reasons = [
            f"crisis signal: {_CATEGORY_WORDS[s.category]} ({_LANGUAGE_NAMES[s.language]})"
            for s in signals
        ]
        reasons.append(
            "a crisis overrides every other policy: "
            f"safe-messaging reply in {reply_language} and a handoff to a human"
        )
        return Decision(
            action=Action.HANDOFF,
            strategy=_STRATEGIES[category],
            tone=Tone.CALM,
            confidence=1.0,
            policy=f"{SAFETY_PREFIX}{category.value}",
            reasons=tuple(reasons),
        )
