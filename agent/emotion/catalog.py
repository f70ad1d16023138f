"""Emotion models by name: what `--model` and `HEARTLINE_EMOTION_MODEL` accept.

- ``auto``: the shipped models, one per language (English: the MiniLM model,
  Chinese: the SMP2020 model), the lexicon for anything else;
- ``neural``, ``chinese``, ``lexicon``: one of them for every text;
- anything else: a Hugging Face sequence-classification model, by local
  directory or hub id (a hub id needs a network on first use).

Models load on demand, never at import time; loading the neural models takes
about a second.
"""

from __future__ import annotations

from pathlib import Path

from agent.emotion.base import EmotionModel
from agent.emotion.lexicon import LexiconRecognizer
from agent.emotion.precision import Precision
from agent.language import Language

__all__ = ["BUILT_IN", "load_model", "models_for"]

BUILT_IN = ("auto", "neural", "chinese", "lexicon")


def load_model(name: str, *, precision: Precision = "auto") -> EmotionModel:
    """One model by name (not ``auto``, which is one model per language).

    `precision` applies to the neural English model, the one whose speed it moves.
    """
    if name == "neural":
        from agent.emotion.neural import NeuralEmotionModel

        return NeuralEmotionModel.load(precision=precision)
    if name == "chinese":
        from agent.emotion.chinese import ChineseEmotionModel

        return ChineseEmotionModel.load()
    if name == "lexicon":
        return LexiconRecognizer()
    from agent.emotion.huggingface import HuggingFaceRecognizer

    return HuggingFaceRecognizer.load(name, local_files_only=Path(name).exists())


def models_for(name: str, *, precision: Precision = "auto") -> dict[Language, EmotionModel]:
    """The model for each language: both shipped ones for ``auto``, else the one named."""
    if name == "auto":
        return {"en": load_model("neural", precision=precision), "zh": load_model("chinese")}
    model = load_model(name, precision=precision)
    return {"en": model, "zh": model}
