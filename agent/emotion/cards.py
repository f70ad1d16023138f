"""What each emotion model is made of and under which licence, by `--emotion-model` setting.

The banner of `heartline serve` names them before any model loads (the supervisor never
loads one), so this is plain data: no model, no torch. The default Chinese model learnt
from SMP2020-EWECT, whose organisers shared it for research use only; ``open`` serves
Chinese from Heartline's own words and support data instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.emotion.domain import Domain

__all__ = ["ModelCard", "cards_for", "describe"]


@dataclass(frozen=True, slots=True)
class ModelCard:
    """One model a setting loads: for which texts, what it is, its licence."""

    reads: str
    name: str
    licence: str


_ENGLISH = ModelCard(
    "en",
    "goemotions-minilm",
    "trained on GoEmotions (CC BY 4.0) over the all-MiniLM-L6-v2 encoder (Apache-2.0, "
    "packaged under MIT)",
)
_CHINESE = ModelCard(
    "zh",
    "smp2020-chinese",
    "trained on SMP2020-EWECT: research and non-commercial use only "
    "(--emotion-model open serves Chinese without it)",
)
_LEXICON = ModelCard("zh", "lexicon", "Heartline's own word lists (Apache-2.0)")
_FALLBACK = ModelCard("other", "lexicon", "Heartline's own word lists (Apache-2.0)")
_SUPPORT = ModelCard(
    "en, zh",
    "support heads",
    "trained on Heartline's customer-support set (CC BY 4.0)",
)

_BY_SETTING: dict[str, tuple[ModelCard, ...]] = {
    "auto": (_ENGLISH, _CHINESE),
    "open": (_ENGLISH, _LEXICON),
    "neural": (ModelCard("en, zh", _ENGLISH.name, _ENGLISH.licence),),
    "chinese": (ModelCard("en, zh", _CHINESE.name, _CHINESE.licence),),
    "lexicon": (ModelCard("en, zh", "lexicon", _LEXICON.licence),),
}


def cards_for(setting: str, domain: Domain) -> tuple[ModelCard, ...]:
    """The models `--emotion-model setting` loads, the support heads, and the fallback."""
    cards = _BY_SETTING.get(setting) or (
        ModelCard("en, zh", setting, "see the model's own card or licence file"),
    )
    heads = (_SUPPORT,) if domain == "support" and setting in _BY_SETTING else ()
    return (*cards, *heads, _FALLBACK)


def describe(setting: str, domain: Domain) -> list[str]:
    """One line per model, for a banner."""
    return [f"{card.reads}: {card.name}, {card.licence}" for card in cards_for(setting, domain)]
