import pytest

from agent.emotion import LexiconRecognizer
from agent.emotion.labels import LABELS, reading_from
from agent.values import Action, Exchange, HistorySummary, SessionMood, Strategy, Trend, TurnContext
from policies.conditions import EmotionAtLeast, expand_labels
from policies.stack import policy_stack

_reader = LexiconRecognizer()


def _context(
    text: str, *, earlier: tuple[str, ...] = (), history: HistorySummary | None = None
) -> TurnContext:
    conversation = tuple(Exchange(text=t, reply="", emotion=_reader.read(t)) for t in earlier)
    return TurnContext(
        text=text,
        emotion=_reader.read(text),
        history=history or HistorySummary.first_time(),
        conversation=conversation,
    )


def test_anger_de_escalates_and_says_why() -> None:
    decision = policy_stack().decide(_context("This is ridiculous, I am furious!"))
    assert decision is not None
    assert (decision.action, decision.strategy) == (Action.REPLY, Strategy.DE_ESCALATE)
    assert decision.policy == "rules:angry"
    assert "anger" in decision.reasons[0]


def test_third_angry_turn_in_a_row_hands_off() -> None:
    angry = "I am furious, this is unacceptable!"
    decision = policy_stack().decide(_context(angry, earlier=(angry, angry)))
    assert decision is not None
    assert decision.action is Action.HANDOFF


def test_asking_for_a_human_hands_off_in_both_languages() -> None:
    for text in ("Can I talk to a real person?", "我要转人工"):
        decision = policy_stack().decide(_context(text))
        assert decision is not None
        assert decision.action is Action.HANDOFF


def test_feelings_pick_their_strategies() -> None:
    cases = {
        "I feel so sad and lonely": Strategy.EMPATHIZE,
        "I'm worried and scared": Strategy.REASSURE,
        "Thank you, this is wonderful!": Strategy.CELEBRATE,
        "I'm confused, what do you mean": Strategy.CLARIFY,
        "Where is my parcel": Strategy.INFORM,
    }
    for text, strategy in cases.items():
        decision = policy_stack().decide(_context(text))
        assert decision is not None
        assert decision.strategy is strategy, text


def test_reasons_cite_the_history() -> None:
    history = HistorySummary(returning=True, sessions=3, turns=12, trend=Trend.DETERIORATING)
    decision = policy_stack().decide(_context("Where is my parcel", history=history))
    assert decision is not None
    assert decision.strategy is Strategy.EMPATHIZE
    assert any("returning user" in reason for reason in decision.reasons)


def _sessions(*moods: str) -> tuple[SessionMood, ...]:
    return tuple(
        SessionMood(turns=4, mood=mood, mean_valence=-0.5, ended_at=float(100 - i))
        for i, mood in enumerate(moods)
    )


def test_frustration_in_earlier_sessions_gets_an_apology_first() -> None:
    history = HistorySummary(
        returning=True, sessions=3, turns=12, past_sessions=_sessions("anger", "anger", "joy")
    )
    decision = policy_stack().decide(_context("Where is my parcel", history=history))
    assert decision is not None
    assert (decision.strategy, decision.policy) == (Strategy.APOLOGIZE, "rules:frustrated_before")
    assert decision.reasons == (
        "apologise first: frustrated in the last 2 sessions",
        "returning user (3 sessions, 12 turns), frustrated in the last 2 sessions",
        "overruled fallback: inform (0.30)",
    )
    assert decision.abstained == ("safety",)


def test_one_frustrated_session_is_not_yet_a_pattern() -> None:
    history = HistorySummary(
        returning=True, sessions=2, turns=8, past_sessions=_sessions("anger", "joy")
    )
    decision = policy_stack().decide(_context("Where is my parcel", history=history))
    assert decision is not None
    assert decision.strategy is Strategy.INFORM
    assert "frustrated in the last session" in decision.reasons[-1]
    assert decision.policy == "fallback"
    assert decision.abstained == ("safety", "rules")


def test_history_describes_itself() -> None:
    assert HistorySummary.first_time().describe() == "first-time user"
    history = HistorySummary(
        returning=True,
        sessions=1,
        turns=1,
        mean_valence=0.25,
        trend=Trend.RECOVERING,
        past_sessions=_sessions("sadness"),
    )
    assert history.mood_streak() == ("sadness", 1)
    assert history.describe() == (
        "returning user (1 session, 1 turn), sad in the last session, mood recovering, "
        "usual valence +0.25"
    )


def _scored(**scores: float) -> TurnContext:
    reading = reading_from(dict.fromkeys(LABELS, 0.0) | scores, model="test")
    return TurnContext(text="-", emotion=reading, history=HistorySummary.first_time())


def test_a_group_scores_the_chance_that_any_of_its_labels_is_present() -> None:
    sadness = expand_labels(["sadness"])
    condition = EmotionAtLeast(labels=sadness, threshold=0.4)
    five_weak = _scored(neutral=0.6, **dict.fromkeys(sadness, 0.08))  # 0.40 summed
    assert condition.score(five_weak) == pytest.approx(1 - 0.92**5)
    assert not condition.holds(five_weak)
    assert condition.holds(_scored(sadness=0.45, neutral=0.5))
    # two labels of a group together reach more than either alone
    angry = EmotionAtLeast(labels=expand_labels(["anger", "disgust"]), threshold=0.7)
    assert angry.holds(_scored(anger=0.5, disgust=0.45))
