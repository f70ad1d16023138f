import numpy as np
import pytest

from agent.emotion.labels import reading_from
from agent.values import (
    ConversationMood,
    HistorySummary,
    SessionMood,
    Trajectory,
    Trend,
    TurnContext,
)
from policies.features import FEATURE_DIM, FEATURE_NAMES, FLOW_STATES, context_features

_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


def _context(
    scores: dict[str, float],
    *,
    history: HistorySummary | None = None,
    mood: ConversationMood | None = None,
) -> TurnContext:
    return TurnContext(
        text="",
        emotion=reading_from(scores, model="test"),
        history=history or HistorySummary.first_time(),
        mood=mood or ConversationMood(),
    )


def _rich_history() -> HistorySummary:
    return HistorySummary(
        returning=True,
        sessions=3,
        turns=20,
        mean_valence=-0.4,
        trend=Trend.DETERIORATING,
        past_sessions=(SessionMood(turns=5, mood="anger", mean_valence=-0.6, ended_at=1.0),),
    )


def test_dimension_and_names_agree() -> None:
    assert len(FEATURE_NAMES) == FEATURE_DIM == len(set(FEATURE_NAMES))
    x = context_features(_context({"neutral": 1.0}))
    assert x.shape == (FEATURE_DIM,)
    assert x.dtype == np.float64
    assert x[_INDEX["bias"]] == 1.0


@pytest.mark.parametrize("flow_state", [None, *FLOW_STATES, "collect_details"])
def test_values_are_bounded_and_one_hots_are_one_hot(flow_state: str | None) -> None:
    # A multi-label reading whose anger labels sum past 1 still yields a bounded group score.
    context = _context(
        {"anger": 0.9, "annoyance": 0.8, "disapproval": 0.7, "neutral": 0.1},
        history=_rich_history(),
        mood=ConversationMood(valence=-0.7, trajectory=Trajectory.ESCALATING),
    )
    x = context_features(context, flow_state=flow_state)
    assert np.all(x >= -1.0)
    assert np.all(x <= 1.0)
    assert x[_INDEX["emotion.anger"]] == 1.0
    for prefix in ("mood.trajectory.", "history.trend.", "flow."):
        block = [x[i] for name, i in _INDEX.items() if name.startswith(prefix)]
        assert sorted(block)[-1] == 1.0
        assert sum(block) == 1.0, prefix
    expected = flow_state if flow_state in FLOW_STATES else "other" if flow_state else "none"
    assert x[_INDEX[f"flow.{expected}"]] == 1.0


def test_history_and_mood_slots() -> None:
    context = _context(
        {"neutral": 1.0},
        history=_rich_history(),
        mood=ConversationMood(valence=-0.7, trajectory=Trajectory.ESCALATING),
    )
    x = context_features(context)
    assert x[_INDEX["history.returning"]] == 1.0
    assert x[_INDEX["history.trend.deteriorating"]] == 1.0
    assert x[_INDEX["history.mean_valence"]] == pytest.approx(-0.4)
    assert x[_INDEX["history.last_session_angry"]] == 1.0
    assert x[_INDEX["mood.valence"]] == pytest.approx(-0.7)
    assert x[_INDEX["mood.trajectory.escalating"]] == 1.0

    first = context_features(_context({"neutral": 1.0}))
    assert first[_INDEX["history.returning"]] == 0.0
    assert first[_INDEX["history.mean_valence"]] == 0.0
    assert first[_INDEX["history.trend.unknown"]] == 1.0
    assert first[_INDEX["mood.trajectory.steady"]] == 1.0


def test_different_emotions_give_different_vectors() -> None:
    readings = {
        "anger": {"anger": 0.8, "neutral": 0.2},
        "sadness": {"sadness": 0.8, "neutral": 0.2},
        "joy": {"joy": 0.8, "neutral": 0.2},
        "fear": {"fear": 0.8, "neutral": 0.2},
        "neutral": {"neutral": 1.0},
    }
    vectors = {group: context_features(_context(scores)) for group, scores in readings.items()}
    for group, x in vectors.items():
        assert x[_INDEX[f"emotion.{group}"]] == pytest.approx(readings[group][group])
    names = list(vectors)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not np.array_equal(vectors[a], vectors[b]), (a, b)
    assert (
        vectors["anger"][_INDEX["emotion.valence"]] < 0 < vectors["joy"][_INDEX["emotion.valence"]]
    )


def test_fine_labels_sum_into_their_ekman_group() -> None:
    x = context_features(_context({"gratitude": 0.3, "relief": 0.2, "neutral": 0.5}))
    assert x[_INDEX["emotion.joy"]] == pytest.approx(0.5)
    assert x[_INDEX["emotion.neutral"]] == pytest.approx(0.5)
