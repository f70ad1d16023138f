"""Fusing a text reading with client signals: pure math, no event loop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.emotion.fusion import (
    FusionWeights,
    as_distribution,
    fuse,
    signal_distribution,
)
from agent.emotion.labels import LABELS, summarize
from agent.values import EmotionReading


def reading(model: str = "minilm-goemotions-v1", **scores: float) -> EmotionReading:
    full = {label: scores.get(label, 0.0) for label in LABELS}
    dominant, valence, arousal, intensity = summarize(full)
    return EmotionReading(
        scores=full,
        dominant=dominant,
        valence=valence,
        arousal=arousal,
        intensity=intensity,
        model=model,
        labels=(dominant,),
    )


def test_signals_below_one_leave_the_rest_to_neutral() -> None:
    dist = signal_distribution({"anger": 0.9})
    assert dist["anger"] == pytest.approx(0.9)
    assert dist["neutral"] == pytest.approx(0.1)
    assert len(dist) == 28


def test_signals_above_one_are_normalised() -> None:
    dist = signal_distribution({"anger": 0.8, "fear": 0.8})
    assert (dist["anger"], dist["fear"], dist["neutral"]) == (0.5, 0.5, 0.0)


def test_no_mass_reads_as_neutral() -> None:
    assert as_distribution({})["neutral"] == 1.0
    assert signal_distribution({"joy": 0.0})["neutral"] == 1.0


def test_the_documented_example() -> None:
    """Neutral text + {anger: 0.9}: w_text = 0.7 * 0.2, w_signals = 0.3 * (0.2 + 0.8 * 0.9)."""
    fused = fuse(reading(neutral=1.0), {"anger": 0.9})
    w_text, w_signals = 0.7 * 0.2, 0.3 * (0.2 + 0.8 * 0.9)
    share = w_signals / (w_text + w_signals)
    assert fused.scores["anger"] == pytest.approx(share * 0.9)
    assert fused.scores["neutral"] == pytest.approx(1 - share + share * 0.1)
    assert fused.dominant == "anger"
    assert fused.valence < 0
    assert fused.model == "minilm-goemotions-v1+signals"
    assert fused.labels == ()
    assert fused.present() == ("anger",)


def test_an_emotional_text_outweighs_a_weak_or_neutral_signal() -> None:
    joyful = reading(joy=0.8, neutral=0.2)
    assert fuse(joyful, {"neutral": 1.0}).dominant == "joy"
    assert fuse(joyful, {"anger": 0.4}).dominant == "joy"
    assert fuse(reading(neutral=1.0), {"anger": 0.3}).dominant == "neutral"


def test_summaries_are_recomputed_from_the_fused_distribution() -> None:
    fused = fuse(reading(sadness=0.7, neutral=0.3), {"fear": 1.0})
    assert (fused.dominant, fused.valence, fused.arousal, fused.intensity) == summarize(
        fused.scores
    )
    assert sum(fused.scores.values()) == pytest.approx(1.0)


def test_weights_are_configurable_and_checked() -> None:
    text_only = fuse(reading(joy=1.0), {"anger": 1.0}, FusionWeights(text=1.0, signals=0.0))
    assert text_only.scores["joy"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="weights"):
        FusionWeights(text=0.0, signals=0.0)
    with pytest.raises(ValueError, match="floor"):
        FusionWeights(floor=0.0)


def test_a_long_model_name_still_fits() -> None:
    fused = fuse(reading(model="m" * 128, joy=1.0), {"joy": 1.0})
    assert len(fused.model) == 128
    assert fused.model.endswith("+signals")


scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@given(
    st.dictionaries(st.sampled_from(LABELS), scores, min_size=1),
    st.dictionaries(st.sampled_from(LABELS), scores, min_size=1, max_size=28),
)
def test_any_valid_input_fuses_to_a_valid_distribution(
    text: dict[str, float], signals: dict[str, float]
) -> None:
    fused = fuse(reading(**text), signals)
    assert sum(fused.scores.values()) == pytest.approx(1.0)
    assert set(fused.scores) == set(LABELS)
