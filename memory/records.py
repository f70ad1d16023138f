"""What the dialogue manager hands memory to keep."""

from __future__ import annotations

from dataclasses import dataclass

from agent.values import Decision, EmotionReading

__all__ = ["AnsweredTurn", "FeedbackRecord", "TurnRecord"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AnsweredTurn:
    """A stored turn as its user saw it answered: enough to show the reply again."""

    turn_id: str
    seq: int
    user_id: str
    reply: str
    interrupted: bool
    generator: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnRecord:
    """One answered (or interrupted) turn with its reading and decision."""

    session_id: str
    user_id: str
    turn_id: str
    seq: int
    text: str
    reply: str
    interrupted: bool
    generator: str
    emotion: EmotionReading
    decision: Decision
    created_at: float
    # Whose turn it is: users, their history and the sealing of their text are per tenant.
    tenant: str = "default"
    # The learning policy's view of the turn's context, when one is running.
    features: tuple[float, ...] | None = None
    # The conversation flow's state after this turn, when a flow is running.
    flow_state: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackRecord:
    """A user's score for one reply."""

    session_id: str
    user_id: str
    turn_id: str
    score: int
    created_at: float
    tenant: str = "default"
