"""The label spaces: GoEmotions' 27 emotions + neutral, and the views derived from it.

Valence (-1..1) and arousal (0..1) per label are coarse anchors in the spirit
of the NRC VAD lexicon; a reading's valence and arousal are the score-weighted
means of its labels' anchors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent.values import EmotionReading

__all__ = [
    "AROUSAL",
    "EKMAN",
    "EKMAN_OF",
    "LABELS",
    "NEUTRAL",
    "SENTIMENT_OF",
    "VALENCE",
    "any_present",
    "group_scores",
    "headline",
    "reading_from",
    "summarize",
]

NEUTRAL = "neutral"

LABELS: tuple[str, ...] = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion",
    "curiosity", "desire", "disappointment", "disapproval", "disgust", "embarrassment",
    "excitement", "fear", "gratitude", "grief", "joy", "love", "nervousness", "optimism",
    "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral",
)  # fmt: skip

# Ekman-7 grouping, as published with GoEmotions (neutral maps to itself).
EKMAN: Mapping[str, tuple[str, ...]] = {
    "anger": ("anger", "annoyance", "disapproval"),
    "disgust": ("disgust",),
    "fear": ("fear", "nervousness"),
    "joy": (
        "joy", "amusement", "approval", "excitement", "gratitude", "love", "optimism",
        "relief", "pride", "admiration", "desire", "caring",
    ),
    "sadness": ("sadness", "disappointment", "embarrassment", "grief", "remorse"),
    "surprise": ("surprise", "realization", "confusion", "curiosity"),
    "neutral": ("neutral",),
}  # fmt: skip

EKMAN_OF: Mapping[str, str] = {label: group for group, labels in EKMAN.items() for label in labels}


def any_present(scores: Mapping[str, float], labels: Iterable[str]) -> float:
    """The chance that at least one of `labels` is present (noisy-or of their scores).

    A sum would overstate a group read by a multi-label model, whose scores are
    independent: five sadness-group labels near 0.1 each are not sadness 0.5. For a
    single-label model (scores summing to one) noisy-or is the sum or a little less.
    """
    absent = 1.0
    for label in labels:
        absent *= 1.0 - min(1.0, scores.get(label, 0.0))
    return 1.0 - absent


def headline(scores: Mapping[str, float], present: Iterable[str]) -> str:
    """The label a reading stands for: its strongest present emotion; neutral only when none is.

    A person names the strongest feeling they see, and names none only when they see
    none: a present emotion outranks a present neutral whatever their scores.
    """
    emotions = [label for label in present if label != NEUTRAL]
    if not emotions:
        return NEUTRAL
    return max(emotions, key=lambda label: scores.get(label, 0.0))


def group_scores(scores: Mapping[str, float]) -> dict[str, float]:
    """Each Ekman-7 group's score: the chance that any of its labels is present."""
    return {group: round(any_present(scores, labels), 4) for group, labels in EKMAN.items()}


SENTIMENT_OF: Mapping[str, str] = {
    **{label: "positive" for label in EKMAN["joy"]},
    **{
        label: "negative"
        for group in ("anger", "disgust", "fear", "sadness")
        for label in EKMAN[group]
    },
    **{label: "ambiguous" for label in EKMAN["surprise"]},
    "neutral": "neutral",
}  # fmt: skip

VALENCE: Mapping[str, float] = {
    "admiration": 0.7, "amusement": 0.7, "anger": -0.8, "annoyance": -0.5, "approval": 0.5,
    "caring": 0.6, "confusion": -0.2, "curiosity": 0.2, "desire": 0.4, "disappointment": -0.6,
    "disapproval": -0.5, "disgust": -0.8, "embarrassment": -0.5, "excitement": 0.8,
    "fear": -0.7, "gratitude": 0.8, "grief": -0.9, "joy": 0.9, "love": 0.9, "nervousness": -0.5,
    "optimism": 0.6, "pride": 0.7, "realization": 0.1, "relief": 0.6, "remorse": -0.6,
    "sadness": -0.8, "surprise": 0.2, "neutral": 0.0,
}  # fmt: skip

AROUSAL: Mapping[str, float] = {
    "admiration": 0.5, "amusement": 0.6, "anger": 0.9, "annoyance": 0.6, "approval": 0.3,
    "caring": 0.3, "confusion": 0.4, "curiosity": 0.5, "desire": 0.6, "disappointment": 0.4,
    "disapproval": 0.5, "disgust": 0.6, "embarrassment": 0.5, "excitement": 0.9, "fear": 0.8,
    "gratitude": 0.4, "grief": 0.5, "joy": 0.7, "love": 0.6, "nervousness": 0.7,
    "optimism": 0.5, "pride": 0.6, "realization": 0.4, "relief": 0.3, "remorse": 0.4,
    "sadness": 0.3, "surprise": 0.8, "neutral": 0.1,
}  # fmt: skip


def summarize(scores: Mapping[str, float]) -> tuple[str, float, float, float]:
    """Dominant label, valence, arousal and intensity of a label distribution.

    Intensity is how far the reading is from neutral: the mass on emotional
    labels, scaled by how aroused they are.
    """
    total = valence = arousal = 0.0
    for label, p in scores.items():  # one pass: a reading is summarized on every turn
        total += p
        valence += VALENCE[label] * p
        arousal += AROUSAL[label] * p
    total = total or 1.0
    valence /= total
    arousal /= total
    dominant = max(scores, key=scores.__getitem__)
    emotional = 1.0 - scores.get(NEUTRAL, 0.0) / total
    intensity = min(1.0, emotional * (0.5 + arousal))
    return dominant, max(-1.0, min(1.0, valence)), min(1.0, arousal), intensity


def reading_from(
    scores: Mapping[str, float],
    *,
    model: str,
    dominant: str | None = None,
    labels: tuple[str, ...] = (),
    groups: tuple[str, ...] = (),
) -> EmotionReading:
    """A reading of `scores` (clipped to [0, 1]) with its summaries.

    The dominant label is the `headline` of the present `labels` when the model
    decided those, else the most probable label; `dominant` overrides both.
    """
    clipped = {label: min(1.0, max(0.0, p)) for label, p in scores.items()}
    top, valence, arousal, intensity = summarize(clipped)
    return EmotionReading(
        scores=clipped,
        dominant=dominant or (headline(clipped, labels) if labels else top),
        valence=valence,
        arousal=arousal,
        intensity=intensity,
        model=model,
        labels=labels,
        groups=groups,
    )
