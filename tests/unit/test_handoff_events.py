"""What a handoff decision becomes: the trigger, the user's notice, the help desk's request."""

from __future__ import annotations

import pytest

from agent.dialogue.handoff import handoff_events, handoff_trigger
from agent.events import UserTurn
from agent.generation.template_text import HANDOFF_NOTICES
from agent.values import Action, Decision, EmotionReading, Strategy, Tone

READING = EmotionReading(
    scores={"sadness": 0.9}, dominant="sadness", valence=-0.8, arousal=0.3, intensity=0.9, model="m"
)


def _decision(policy: str) -> Decision:
    return Decision(
        action=Action.HANDOFF,
        strategy=Strategy.EMPATHIZE,
        tone=Tone.WARM,
        confidence=1.0,
        policy=policy,
        reasons=("matched the self-harm terms",),
    )


@pytest.mark.parametrize(
    ("policy", "trigger"),
    [
        ("safety:self_harm", "crisis"),
        ("rules:asks_for_human", "rule"),
        ("flow:customer_service:escalate", "flow"),
        ("bandit", "policy"),
    ],
)
def test_the_trigger_comes_from_the_deciding_policy(policy: str, trigger: str) -> None:
    assert handoff_trigger(policy) == trigger


def test_a_chinese_crisis_gets_the_safety_notice_in_chinese_and_staff_get_the_reasons() -> None:
    turn = UserTurn(
        session_id="s1", user_id="u1", turn_id="t1", seq=1, text="我真的不想活了", sent_at=0.0
    )
    notice, request = handoff_events(turn, READING, _decision("safety:self_harm"), now=5.0)
    assert notice.reason == HANDOFF_NOTICES[(True, "zh")]
    assert "self-harm" not in notice.reason
    assert (request.trigger, request.reason) == (
        "crisis",
        "safety:self_harm; matched the self-harm terms",
    )
    assert (request.text, request.at, request.reading) == ("我真的不想活了", 5.0, READING)
