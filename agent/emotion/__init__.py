"""Emotion recognition: label spaces and recognizers behind one batch-first protocol."""

from agent.emotion.base import EmotionRecognizer
from agent.emotion.lexicon import LexiconRecognizer

__all__ = ["EmotionRecognizer", "LexiconRecognizer"]
