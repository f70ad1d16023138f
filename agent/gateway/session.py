"""One session's turn bookkeeping, without I/O.

`SessionCore` numbers turns, knows which turn is in flight (for barge-in and
`cancel`), rejects duplicate ids and feedback for foreign turns, drops every
event of a turn once it ended, says when an unanswered turn is due to be
published again, and knows whether a person has taken the session over. A
session a client resumes goes on from what the workers knew of it (`resume`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

from agent.errors import WireError
from agent.events import (
    AgentMessage,
    Cancel,
    DecisionMade,
    EmotionRead,
    Feedback,
    Handoff,
    ReplyDelta,
    ReplyEnded,
    ReplyStarted,
    SessionFound,
    Takeover,
    TurnFailed,
    UserTurn,
)
from agent.gateway.admission import Admission
from agent.gateway.protocol import (
    ErrorCode,
    FeedbackMessage,
    ServerMessage,
    UserMessage,
    agent_message,
    event_message,
    takeover_message,
)
from agent.privacy.redaction import redact

__all__ = ["ReplyEvent", "SessionCore", "TurnRefused"]

ReplyEvent = (
    EmotionRead | DecisionMade | ReplyStarted | ReplyDelta | ReplyEnded | Handoff | TurnFailed
)
"""The events a worker publishes about a turn on the session's reply topic."""


class _Recent:
    """An insertion-ordered set that forgets its oldest members past `capacity`."""

    __slots__ = ("_capacity", "_items")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def add(self, item: str) -> None:
        self._items[item] = None
        self._items.move_to_end(item)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)


class TurnRefused(WireError):
    """`overloaded`: the turn does not fit now. The `cancels` of the barge-in it made
    must go out all the same: a barge-in stops the reply whatever the backlog."""

    def __init__(
        self, turn_id: str | None, retry_after_ms: int, cancels: list[Cancel] | None = None
    ) -> None:
        super().__init__(
            ErrorCode.OVERLOADED,
            "the service is busy; send the message again later",
            turn_id=turn_id,
            retry_after_ms=retry_after_ms,
        )
        self.cancels = cancels or []


class SessionCore:
    """The state of one session: client turns in, bus events and server messages out.

    Turns are numbered 1, 2, ... in arrival order. A turn is in flight from
    `user_message` until its `ReplyEnded` or `TurnFailed`. The last
    `remembered_turns` turn ids are kept for duplicate and feedback checks.
    While a person has the session (`agent`), turns go out marked for them:
    the workers read and keep them, and the bot does not answer. Every turn in
    flight is counted in `admission`, which the gateway process's sessions share;
    `close` takes the session's out.
    """

    def __init__(
        self,
        *,
        session_id: str,
        user_id: str,
        tenant: str = "default",
        remembered_turns: int = 10_000,
        admission: Admission | None = None,
    ) -> None:
        self.session_id = session_id
        self.user_id = user_id
        self.tenant = tenant
        self.agent: str | None = None
        self._seq = 0
        self._turns = _Recent(remembered_turns)
        self._ended = _Recent(remembered_turns)
        self._in_flight: dict[str, _InFlight] = {}
        self._answered: dict[str, ReplyEnded] = {}  # of a resumed session, by turn id
        self._last_activity = 0.0
        self._admission = admission or Admission()

    def resume(self, found: SessionFound, *, now: float) -> None:
        """Go on from where the session's previous gateway left it: numbering after
        `found.last_seq`, its answered turns ready to be shown again (`resent`), its
        unfinished ones in flight (their replies come here now)."""
        self._seq = max(self._seq, found.last_seq)
        for ended in found.answered:
            self._turns.add(ended.turn_id)
            self._answered[ended.turn_id] = ended
        for turn in found.unfinished:
            self._turns.add(turn.turn_id)
            self._in_flight[turn.turn_id] = _InFlight(turn, resumed=True)
        self._last_activity = now

    def resent(self, turn_id: str) -> list[ServerMessage] | None:
        """A message sent again after `resume`: the reply it had, whole, for a turn
        answered meanwhile; nothing (its reply is on its way) for one still unfinished;
        None for any other message."""
        ended = self._answered.get(turn_id)
        if ended is not None:
            return _messages([*_whole_reply(ended), ended])
        flight = self._in_flight.get(turn_id)
        return [] if flight is not None and flight.resumed else None

    @property
    def seq(self) -> int:
        """The number of the last turn accepted (0 before the first)."""
        return self._seq

    @property
    def in_flight(self) -> tuple[str, ...]:
        """Turns published and not yet ended, oldest first."""
        return tuple(self._in_flight)

    def user_message(self, message: UserMessage, *, now: float) -> tuple[list[Cancel], UserTurn]:
        """Accept a turn: the barge-in `Cancel`s to publish first, then the `UserTurn`.

        The turn carries the text redacted: this is the edge, and nothing past it
        (bus, ledger, workers, models, tables, logs) ever holds the raw text.

        Raises `WireError(duplicate_id)` for an id this session already used, and
        `TurnRefused` when admission control refuses the turn (its id stays free).
        """
        if message.id in self._turns:
            raise WireError(
                ErrorCode.DUPLICATE_ID,
                "this session already has a turn with this id",
                turn_id=message.id,
            )
        cancels = self._cancel_in_flight("barge_in")
        retry_after_ms = self._admission.admit((self.session_id, message.id), now=now)
        if retry_after_ms is not None:
            raise TurnRefused(message.id, retry_after_ms, cancels)
        self._seq += 1
        self._turns.add(message.id)
        turn = UserTurn(
            session_id=self.session_id,
            user_id=self.user_id,
            turn_id=message.id,
            seq=self._seq,
            text=redact(message.text),
            sent_at=now,
            signals=message.signals,
            tenant=self.tenant,
            human_agent=self.agent,
        )
        self._in_flight[message.id] = _InFlight(turn)
        self._last_activity = now
        return cancels, turn

    def withdraw(self, turn_id: str) -> None:
        """A turn that could not be published, which the client was told to send again
        (as a new message): it is over here. It is never published again, and whatever
        of it still comes (the broker may have had it after all) is dropped."""
        if turn_id in self._in_flight:
            self._admission.released((self.session_id, turn_id))
            self._end(turn_id)

    def cancel(self, turn_id: str | None = None) -> list[Cancel]:
        """The `Cancel`s the client's `cancel` asks for: of `turn_id` if given, else of
        every turn in flight (none when nothing is)."""
        return self._cancel_in_flight("client", only=turn_id)

    def feedback(self, message: FeedbackMessage) -> Feedback:
        """The `Feedback` event; raises `WireError(unknown_turn)` for a foreign turn."""
        if message.turn_id not in self._turns:
            raise WireError(
                ErrorCode.UNKNOWN_TURN,
                "no turn with this id in this session",
                turn_id=message.turn_id,
            )
        return Feedback(
            session_id=self.session_id,
            user_id=self.user_id,
            turn_id=message.turn_id,
            score=message.score,
            tenant=self.tenant,
        )

    def takeover(self, event: Takeover) -> tuple[ServerMessage, list[Cancel]]:
        """A person takes the session over or gives it back: the client's message, and
        the `Cancel`s of the bot's replies in flight when the person arrives."""
        if event.active:
            self.agent = event.agent
            return takeover_message(event.agent, active=True), self._cancel_in_flight("takeover")
        self.agent = None
        return takeover_message(event.agent, active=False), []

    def agent_message(self, event: AgentMessage, *, now: float) -> ServerMessage:
        self._last_activity = now
        return agent_message(event.agent, event.message_id, event.text)

    def server_messages(self, event: ReplyEvent, *, now: float) -> list[ServerMessage]:
        """The messages to forward for a reply-topic event; none to drop it.

        A turn is over once it ended: later events of it (a worker that took
        over an answered turn runs it again) are dropped. The pieces a client
        gets add up to the reply's final text: when some went missing on the way
        (this gateway was cut off from the bus for a moment), the end brings
        what is missing, as one more piece, or as the whole reply again after a
        fresh `reply_start` when what was shown is not its beginning.
        """
        if event.turn_id in self._ended:
            return []
        self._last_activity = now
        flight = self._in_flight.get(event.turn_id)
        if flight is not None and not flight.started:
            flight.started = True
            self._admission.started((self.session_id, event.turn_id), now=now)
        message = event_message(event)
        messages = [] if message is None else [message]
        if flight is not None:
            match event:
                case ReplyStarted():
                    flight.shown.clear()
                    flight.streaming = True
                case ReplyDelta(seq=seq, text=text):
                    flight.shown.append(text)
                    flight.next_seq = seq + 1
                case ReplyEnded():
                    messages[:0] = _completion(flight, event)
        if isinstance(event, ReplyEnded | TurnFailed):
            self._admission.finished((self.session_id, event.turn_id), now=now)
            self._end(event.turn_id)
        return messages

    def redelivery_due(self, after: float) -> float | None:
        """When the oldest turn is overdue; None when no turn is in flight.

        A turn is overdue when nothing arrived for the session for `after`
        seconds while it waited: its worker may have died holding it before
        claiming it, or what the worker published was lost (this gateway was
        cut off from the broker), its reply's end included. Re-publishing is
        safe: the turn ledger drops duplicates, and a worker that finds the turn
        answered already publishes how it ended once more.
        """
        if not self._in_flight:
            return None
        return self._last_activity + after

    def stranded(self, *, route_changed: float) -> list[UserTurn]:
        """Turns to publish again at once because the way to the workers changed after
        they went out.

        When a worker came or went, or this gateway's bus connection came back
        (`route_changed`), a turn published before may sit with a worker that
        died before claiming it, may have gone out while no worker was there, or
        its reply's events may have been lost on the way: it goes out again then,
        once per change, not `redelivery_due` later. A copy that finds the turn
        claimed is dropped by the turn ledger, and one that finds it answered
        brings how it ended again.
        """
        stranded = []
        for flight in self._in_flight.values():
            turn = flight.turn
            if flight.cancelled or flight.republished >= route_changed:
                continue
            if turn.sent_at < route_changed:
                flight.republished = route_changed
                stranded.append(turn)
        return stranded

    def overdue(self, *, now: float, after: float, attempts: int) -> UserTurn | str | None:
        """The turn to publish again, or the id of one given up on (now ended), or None."""
        due = self.redelivery_due(after)
        if due is None or now < due:
            return None
        oldest = next(iter(self._in_flight.values()))
        self._last_activity = now
        if oldest.attempts >= attempts:
            self._admission.released((self.session_id, oldest.turn.turn_id))
            self._end(oldest.turn.turn_id)
            return oldest.turn.turn_id
        oldest.attempts += 1
        return oldest.turn

    def _end(self, turn_id: str) -> None:
        self._ended.add(turn_id)
        self._in_flight.pop(turn_id, None)

    def _cancel_in_flight(
        self, reason: Literal["barge_in", "client", "takeover"], *, only: str | None = None
    ) -> list[Cancel]:
        cancels = [
            Cancel(session_id=self.session_id, turn_id=turn_id, reason=reason)
            for turn_id, flight in self._in_flight.items()
            if not flight.cancelled and only in (None, turn_id)
        ]
        for cancel in cancels:
            self._in_flight[cancel.turn_id].cancelled = True
            self._admission.released((self.session_id, cancel.turn_id))
        return cancels

    def close(self) -> None:
        """The session is over: its turns no longer count as in flight."""
        for turn_id in self._in_flight:
            self._admission.released((self.session_id, turn_id))


@dataclass(slots=True)
class _InFlight:
    """A turn published and not yet ended."""

    turn: UserTurn
    cancelled: bool = False
    started: bool = False
    attempts: int = 1
    shown: list[str] = field(default_factory=list)  # pieces sent since the last reply_start
    next_seq: int = 0
    streaming: bool = False  # a reply_start went out
    resumed: bool = False  # in flight when its session was resumed here
    republished: float = -math.inf  # the change of workers it was last published again for


def _completion(flight: _InFlight, ended: ReplyEnded) -> list[ServerMessage]:
    """What the client still needs before `ended` for its pieces to add up to the text:
    the rest, or the whole reply from a (fresh) `reply_start`."""
    shown = "".join(flight.shown)
    if shown == ended.text:
        return []
    if flight.streaming and ended.text.startswith(shown):
        rest = ended.text[len(shown) :]
        sid, tid = ended.session_id, ended.turn_id
        return _messages([ReplyDelta(session_id=sid, turn_id=tid, seq=flight.next_seq, text=rest)])
    return _messages(_whole_reply(ended))


def _whole_reply(ended: ReplyEnded) -> list[ReplyEvent]:
    """A fresh `reply_start` and the reply's text as one piece."""
    sid, tid = ended.session_id, ended.turn_id
    events: list[ReplyEvent] = [
        ReplyStarted(session_id=sid, turn_id=tid, generator=ended.generator)
    ]
    if ended.text:
        events.append(ReplyDelta(session_id=sid, turn_id=tid, seq=0, text=ended.text))
    return events


def _messages(events: list[ReplyEvent]) -> list[ServerMessage]:
    return [message for event in events if (message := event_message(event)) is not None]
