"""What a handoff decision becomes: a notice for the user, a request for the help desk. Pure."""

from __future__ import annotations

from agent.events import Handoff, HandoffRequested, HandoffTrigger, UserTurn
from agent.generation.template_text import HANDOFF_NOTICES
from agent.language import detect_language
from agent.privacy.redaction import redact
from agent.values import Decision, EmotionReading
from policies.safety import SAFETY_PREFIX

__all__ = ["handoff_events", "handoff_trigger"]

_TRIGGERS: dict[str, HandoffTrigger] = {"rules": "rule", "flow": "flow"}


def handoff_trigger(policy: str) -> HandoffTrigger:
    """Which kind of policy asked for a person, from the deciding policy's name."""
    if policy.startswith(SAFETY_PREFIX):
        return "crisis"
    return _TRIGGERS.get(policy.split(":", 1)[0], "policy")


def handoff_events(
    turn: UserTurn, reading: EmotionReading, decision: Decision, *, now: float
) -> tuple[Handoff, HandoffRequested]:
    """The user's `Handoff` notice (no policy internals) and the help desk's request.

    The request carries the deciding policy's reasons for staff and the turn's
    message, redacted.
    """
    trigger = handoff_trigger(decision.policy)
    notice = HANDOFF_NOTICES[(trigger == "crisis", detect_language(turn.text))]
    handoff = Handoff(session_id=turn.session_id, turn_id=turn.turn_id, reason=notice)
    request = HandoffRequested(
        session_id=turn.session_id,
        user_id=turn.user_id,
        tenant=turn.tenant,
        trigger=trigger,
        reason="; ".join((decision.policy, *decision.reasons))[:2000],
        turn_id=turn.turn_id,
        text=redact(turn.text),
        reading=reading,
        at=now,
    )
    return handoff, request
