"""Turns the bot does not answer: a person's (the session is taken over), or one skipped
(cancelled before a worker started it). Their ends and what is kept of them."""

from __future__ import annotations

import time

from agent.events import ReplyEnded, UserTurn
from agent.values import Action, Decision, Strategy, Tone

__all__ = ["HUMAN_GENERATOR", "PERSON_DECISION", "SKIPPED_GENERATOR", "silent_end"]

HUMAN_GENERATOR = "human"
"""Who answers the turns of a session a person has taken over."""

SKIPPED_GENERATOR = "skipped"
"""Who "answers" a turn cancelled before a worker started it: no one."""

PERSON_DECISION = Decision(
    action=Action.HANDOFF,
    strategy=Strategy.INFORM,
    tone=Tone.NEUTRAL,
    confidence=1.0,
    policy="human",
    reasons=("a person has taken this conversation over",),
)
"""What is kept as the decision of such a turn: no policy decided it."""


def silent_end(
    turn: UserTurn, generator: str, stages: dict[str, float], started: float, *, interrupted: bool
) -> ReplyEnded:
    """The end of such a turn: no text; `started` is the `time.perf_counter()` it began at."""
    total_ms = round((time.perf_counter() - started) * 1000.0, 3)
    return ReplyEnded(
        session_id=turn.session_id,
        turn_id=turn.turn_id,
        text="",
        interrupted=interrupted,
        generator=generator,
        ttft_ms=total_ms,
        total_ms=total_ms,
        stages=stages,
    )
