"""A plain generation request and chat messages, for the generator tests."""

from __future__ import annotations

from agent.generation.base import GenerationRequest
from agent.values import Action, Decision, EmotionReading, HistorySummary, Strategy, Tone

__all__ = ["NEUTRAL", "plain_messages", "plain_request"]

NEUTRAL = EmotionReading(
    scores={"neutral": 1.0}, dominant="neutral", valence=0.0, arousal=0.0, intensity=0.0,
    model="test",
)  # fmt: skip


def plain_request(text: str = "where is my parcel", *, turn_id: str = "t1") -> GenerationRequest:
    """A first-time user's neutral English turn that the policy answers with `inform`."""
    return GenerationRequest(
        session_id="s1",
        turn_id=turn_id,
        text=text,
        language="en",
        emotion=NEUTRAL,
        decision=Decision(
            action=Action.REPLY, strategy=Strategy.INFORM, tone=Tone.NEUTRAL, confidence=0.5,
            policy="test",
        ),
        history=HistorySummary.first_time(),
    )  # fmt: skip


def plain_messages(request: GenerationRequest) -> list[dict[str, str]]:
    """A system message and the user's text: the smallest prompt a chat model takes."""
    return [{"role": "system", "content": "Be kind."}, {"role": "user", "content": request.text}]
