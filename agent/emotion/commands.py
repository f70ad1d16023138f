"""The `heartline emotion TEXT` command: one text's reading by the named model."""

from __future__ import annotations

import json

from agent.emotion.catalog import models_for
from agent.emotion.domain import Domain
from agent.emotion.precision import Precision
from agent.language import detect_language
from agent.values import EmotionReading

__all__ = ["print_reading", "read_text"]


def read_text(
    text: str, *, model_name: str, precision: Precision = "auto", domain: Domain = "support"
) -> EmotionReading:
    """The reading of one text by the named model (`auto`, `open`: by the text's language)."""
    model = models_for(model_name, precision=precision, domain=domain)[detect_language(text)]
    (reading,) = model.predict([text])
    return reading


def print_reading(reading: EmotionReading, *, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "dominant": reading.dominant,
                    "labels": list(reading.present()),
                    "valence": reading.valence,
                    "arousal": reading.arousal,
                    "intensity": reading.intensity,
                    "model": reading.model,
                    "scores": reading.scores,
                }
            )
        )
        return
    top = sorted(reading.scores.items(), key=lambda item: item[1], reverse=True)[:5]
    print(f"{reading.dominant}  (model {reading.model})")
    print(f"  present:   {', '.join(reading.present())}")
    print(
        f"  valence {reading.valence:+.2f}   arousal {reading.arousal:.2f}   "
        f"intensity {reading.intensity:.2f}"
    )
    print("  top:       " + ", ".join(f"{label} {score:.2f}" for label, score in top))
