"""Fusing a text reading with client-supplied emotion signals (a voice or face model).

Pure functions, no I/O. Both sources become distributions over the 28 labels
and are averaged with *evidence-weighted* weights:

    e_i      = 1 - p_i(neutral)                       how much emotion source i saw
    w_i      = base_i * (floor + (1 - floor) * e_i)   base: text 0.7, signals 0.3; floor 0.2
    fused(l) = (w_text * p_text(l) + w_signals * p_signals(l)) / (w_text + w_signals)

Why not a plain 0.7/0.3 average: a neutral text ("Where is my order?") says
only that the *words* carry no emotion, and a plain average lets its neutral
mass outvote any signal (0.7 neutral against at most 0.3 anger). Scaling each
weight by the source's evidence lets a strong signal speak when the text is
silent, while an emotional text still dominates a weak or neutral signal. The
floor keeps a fully neutral source from vanishing altogether.

Signals are scores in [0, 1] per label, as a client's model gives them. When
they sum to at most 1 the remainder is unassigned evidence and goes to
`neutral` (`{"anger": 0.9}` reads as 0.9 anger, 0.1 neutral); when they sum
to more (independent sigmoid scores) they are divided by their sum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.emotion.base import noted
from agent.emotion.labels import LABELS, NEUTRAL, reading_from
from agent.values import EmotionReading

__all__ = ["FUSED_SUFFIX", "FusionWeights", "as_distribution", "fuse", "signal_distribution"]

FUSED_SUFFIX = "+signals"


@dataclass(frozen=True, slots=True, kw_only=True)
class FusionWeights:
    """Base weights of the two sources and the evidence floor (see the module docstring)."""

    text: float = 0.7
    signals: float = 0.3
    floor: float = 0.2

    def __post_init__(self) -> None:
        if self.text < 0 or self.signals < 0 or self.text + self.signals <= 0:
            raise ValueError("fusion weights must be non-negative and not both zero")
        if not 0.0 < self.floor <= 1.0:
            raise ValueError("the evidence floor must be in (0, 1]")


def as_distribution(scores: Mapping[str, float]) -> dict[str, float]:
    """`scores` over all 28 labels, summing to 1; no mass at all reads as neutral.

    Multi-label models give independent probabilities; dividing by their sum
    puts them on the same footing as a softmax before they are averaged.
    """
    total = sum(scores.get(label, 0.0) for label in LABELS)
    if total <= 0.0:
        return {label: float(label == NEUTRAL) for label in LABELS}
    return {label: scores.get(label, 0.0) / total for label in LABELS}


def signal_distribution(signals: Mapping[str, float]) -> dict[str, float]:
    """Client signals as a distribution: unassigned mass (sum below 1) is neutral."""
    total = sum(signals.values())
    if total >= 1.0:
        return as_distribution(signals)
    padded = dict(signals)
    padded[NEUTRAL] = padded.get(NEUTRAL, 0.0) + (1.0 - total)
    return as_distribution(padded)


def fuse(
    reading: EmotionReading,
    signals: Mapping[str, float],
    weights: FusionWeights | None = None,
) -> EmotionReading:
    """The text reading fused with `signals`; summaries recomputed, model marked `+signals`.

    The fused reading makes no multi-label decision of its own (`labels` is
    empty, so `present()` is its dominant label): the text model's decision
    was about the text alone.
    """
    w = weights or FusionWeights()
    text = as_distribution(reading.scores)
    other = signal_distribution(signals)
    w_text = w.text * _evidence_factor(text, w.floor)
    w_signals = w.signals * _evidence_factor(other, w.floor)
    total = w_text + w_signals
    fused = {label: (w_text * text[label] + w_signals * other[label]) / total for label in LABELS}
    return reading_from(fused, model=noted(reading.model, FUSED_SUFFIX))


def _evidence_factor(distribution: Mapping[str, float], floor: float) -> float:
    return floor + (1.0 - floor) * (1.0 - distribution[NEUTRAL])
