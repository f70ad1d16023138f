"""The dominant label is the one a person would name: the strongest present emotion."""

from __future__ import annotations

from agent.emotion.labels import LABELS, headline, reading_from
from agent.emotion.neural import NeuralEmotionModel


def _scores(**given: float) -> dict[str, float]:
    return {label: given.get(label, 0.0) for label in LABELS}


def test_a_stronger_present_label_headlines_over_a_weaker_one() -> None:
    scores = _scores(relief=0.10, joy=0.27, neutral=0.05)
    reading = reading_from(scores, model="m", labels=("relief", "joy"))
    assert reading.dominant == "joy"


def test_neutral_headlines_only_when_no_emotion_is_present() -> None:
    scores = _scores(neutral=0.9, annoyance=0.3)
    assert headline(scores, ("neutral", "annoyance")) == "annoyance"
    assert headline(scores, ("neutral",)) == "neutral"
    assert headline(scores, ()) == "neutral"


def test_without_a_decision_the_most_probable_label_headlines() -> None:
    assert reading_from(_scores(neutral=0.6, anger=0.4), model="m").dominant == "neutral"


def test_the_neural_model_never_headlines_a_weaker_present_label() -> None:
    model = NeuralEmotionModel.load()
    texts = [
        "Phew, what a relief, and I am so happy it finally arrived!",
        "Thanks, but it still doesn't work.",
        "I'm glad you called, although I'm still a bit nervous about the bill.",
        "Where is my order?",
    ]
    for reading in model.predict(texts):
        emotions = [label for label in reading.present() if label != "neutral"]
        if emotions:
            assert reading.dominant == max(emotions, key=reading.score)
        else:
            assert reading.dominant == "neutral"
