"""The events of people around a session: staff watching it, taking it over, a help desk.

* On a session's watch topic, the gateway holding the session says what happens in
  it (`SessionOpened`, `TurnSummary`, `SessionClosed`) for operator consoles on any
  gateway; an operator's `Takeover` and `AgentMessage` go there too.
* On the session's reply topic, `Takeover` and `AgentMessage` reach the gateway that
  holds the session, which tells its client.
* On the session's handoff topic, `HandoffRequested` asks that a help desk be told.

Texts here are redacted by whoever publishes them: no personal data rides these topics.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from agent.events.turns import (
    EVENT_VERSION,
    STRICT,
    AgentName,
    Id,
    Tenant,
    Text,
    UserId,
    Version,
)
from agent.values import Action, EmotionReading, Strategy

__all__ = [
    "AgentMessage",
    "Channel",
    "HandoffRequested",
    "HandoffTrigger",
    "SessionClosed",
    "SessionOpened",
    "Takeover",
    "TurnSummary",
]

Channel = Literal["ws", "http"]
"""How the session's client talks to the gateway: a WebSocket, or HTTP requests."""

HandoffTrigger = Literal["crisis", "rule", "flow", "policy", "takeover"]
"""What asked for a person: the safety policy, a rule, the flow, another policy, staff."""

Reason = Annotated[str, Field(max_length=2000)]


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class SessionOpened:
    type: Literal["session_opened"] = "session_opened"
    v: Version = EVENT_VERSION
    session_id: Id
    user_id: UserId
    tenant: Tenant
    channel: Channel
    at: float


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class TurnSummary:
    """One turn as staff see it, once its reply ended: the message, the reply, the reading.

    `error` is the pipeline's code when the turn failed instead (no reply).
    """

    type: Literal["turn_summary"] = "turn_summary"
    v: Version = EVENT_VERSION
    session_id: Id
    user_id: UserId
    tenant: Tenant
    channel: Channel
    turn_id: Id
    text: Text
    reply: Text
    interrupted: bool
    generator: Annotated[str, Field(max_length=128)]
    dominant: str
    valence: Annotated[float, Field(ge=-1.0, le=1.0)]
    arousal: Annotated[float, Field(ge=0.0, le=1.0)]
    action: Action | None = None
    strategy: Strategy | None = None
    policy: Annotated[str, Field(max_length=64)] | None = None
    handoff: Reason | None = None
    error: Annotated[str, Field(max_length=64)] | None = None
    at: float


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class SessionClosed:
    type: Literal["session_closed"] = "session_closed"
    v: Version = EVENT_VERSION
    session_id: Id
    at: float


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class Takeover:
    """A person takes the session over (`active`), or gives it back to the bot."""

    type: Literal["takeover"] = "takeover"
    v: Version = EVENT_VERSION
    session_id: Id
    agent: AgentName
    active: bool
    at: float


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class AgentMessage:
    """What the person who took the session over says to the user."""

    type: Literal["agent_message"] = "agent_message"
    v: Version = EVENT_VERSION
    session_id: Id
    agent: AgentName
    message_id: Id
    text: Annotated[str, Field(min_length=1, max_length=4000)]
    at: float


@dataclass(frozen=True, slots=True, kw_only=True, config=STRICT)
class HandoffRequested:
    """A conversation should reach a person: tell the help desk, with what it needs.

    `reason` is for staff (the deciding policy's reasons); `text` and `reading` are
    the message that triggered it, when a message did.
    """

    type: Literal["handoff_requested"] = "handoff_requested"
    v: Version = EVENT_VERSION
    session_id: Id
    user_id: UserId
    tenant: Tenant
    trigger: HandoffTrigger
    reason: Reason
    turn_id: Id | None = None
    text: Text | None = None
    reading: EmotionReading | None = None
    agent: AgentName | None = None
    at: float
