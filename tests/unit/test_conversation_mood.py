"""Conversation-level reading: readings in, mood out; no event loop."""

from __future__ import annotations

import pytest

from agent.emotion.conversation import (
    ALPHA,
    ConversationMood,
    Trajectory,
    replay_mood,
    trajectory_of,
    update_mood,
)
from agent.emotion.labels import LABELS, summarize
from agent.values import EmotionReading, HistorySummary, TurnContext


def reading(**scores: float) -> EmotionReading:
    full = {label: scores.get(label, 0.0) for label in LABELS}
    dominant, valence, arousal, intensity = summarize(full)
    return EmotionReading(
        scores=full,
        dominant=dominant,
        valence=valence,
        arousal=arousal,
        intensity=intensity,
        model="test",
    )


NEUTRAL = reading(neutral=1.0)
ANGRY = reading(anger=0.9, neutral=0.1)
ANNOYED = reading(annoyance=0.5, neutral=0.5)
JOYFUL = reading(joy=0.9, neutral=0.1)
SAD = reading(sadness=0.8, neutral=0.2)


def test_the_start_is_neutral_and_steady() -> None:
    mood = ConversationMood()
    assert (mood.turns, mood.dominant, mood.trajectory) == (0, "neutral", Trajectory.STEADY)
    context = TurnContext(text="hi", emotion=NEUTRAL, history=HistorySummary.first_time())
    assert context.mood == mood


def test_the_first_reading_is_taken_as_it_is() -> None:
    mood = update_mood(ConversationMood(), ANGRY)
    assert mood.turns == 1
    assert mood.dominant == "anger"
    assert mood.scores["anger"] == pytest.approx(0.9)
    assert (mood.valence, mood.intensity) == (ANGRY.valence, ANGRY.intensity)
    assert mood.trajectory is Trajectory.STEADY


def test_the_average_is_exponential_with_alpha() -> None:
    mood = replay_mood([ANGRY, NEUTRAL])
    assert ALPHA == 0.5
    assert mood.scores["anger"] == pytest.approx(0.45)
    assert mood.scores["neutral"] == pytest.approx(0.55)
    assert mood.valence == pytest.approx(ALPHA * NEUTRAL.valence + (1 - ALPHA) * ANGRY.valence)
    assert sum(mood.scores.values()) == pytest.approx(1.0)
    heavier = replay_mood([ANGRY, NEUTRAL], alpha=0.9)
    assert heavier.scores["anger"] == pytest.approx(0.09)


def test_scores_are_normalised_before_averaging() -> None:
    sigmoid = reading(anger=0.9, annoyance=0.9)  # independent probabilities summing past 1
    mood = update_mood(ConversationMood(), sigmoid)
    assert sum(mood.scores.values()) == pytest.approx(1.0)
    assert mood.recent_anger == (pytest.approx(1.0),)


def test_a_single_neutral_turn_after_anger_does_not_erase_it() -> None:
    mood = replay_mood([ANGRY, ANGRY, NEUTRAL])
    assert mood.scores["anger"] == pytest.approx(0.45)
    assert mood.intensity > 0.4
    assert mood.trajectory is Trajectory.CALMING


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        ([NEUTRAL, ANNOYED, ANGRY], Trajectory.ESCALATING),
        ([NEUTRAL, SAD], Trajectory.ESCALATING),
        ([ANGRY, ANNOYED, NEUTRAL], Trajectory.CALMING),
        ([SAD, NEUTRAL], Trajectory.CALMING),
        ([NEUTRAL, JOYFUL], Trajectory.BRIGHTENING),
        ([ANGRY, JOYFUL, ANGRY], Trajectory.VOLATILE),
        ([JOYFUL, JOYFUL, JOYFUL], Trajectory.STEADY),
        ([NEUTRAL, NEUTRAL], Trajectory.STEADY),
        ([ANGRY], Trajectory.STEADY),
    ],
)
def test_trajectory(turns: list[EmotionReading], expected: Trajectory) -> None:
    assert replay_mood(turns).trajectory is expected


def test_only_the_last_window_counts() -> None:
    mood = replay_mood([ANGRY, NEUTRAL, NEUTRAL, NEUTRAL, NEUTRAL])
    assert len(mood.recent_valence) == 4
    assert mood.trajectory is Trajectory.STEADY
    recovering = replay_mood([ANGRY, NEUTRAL, NEUTRAL, NEUTRAL])
    assert recovering.trajectory is Trajectory.CALMING


def test_trajectory_rules_directly() -> None:
    assert trajectory_of((), ()) is Trajectory.STEADY
    assert trajectory_of((0.0, -0.1), (0.0, 0.5)) is Trajectory.ESCALATING
    assert trajectory_of((0.0, 0.1), (0.0, 0.25)) is Trajectory.STEADY  # rose, but still low
    assert trajectory_of((-0.5, 0.1, -0.5), (0.0, 0.0, 0.0)) is Trajectory.VOLATILE


def test_the_mood_is_a_frozen_validated_value() -> None:
    mood = ConversationMood()
    with pytest.raises(AttributeError):
        mood.turns = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="dominant"):
        ConversationMood(scores={"joy": 1.0}, dominant="anger")
    with pytest.raises(ValueError, match="same length"):
        ConversationMood(recent_valence=(0.1,))
    with pytest.raises(ValueError, match="alpha"):
        update_mood(mood, ANGRY, alpha=0.0)
