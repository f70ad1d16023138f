"""One session's traffic with the bus, whatever the client's transport (WebSocket or HTTP).

The relay publishes the session's turns, cancels and feedback, turns the reply
events of its reply topic into server messages for `deliver`, publishes an
unanswered turn again (and gives up on it after the last attempt), follows a
person taking the session over, and tells staff consoles what happens in the
session on its watch topic. The bookkeeping itself is `SessionCore`'s; this is
the I/O around it.

Overflow policy: the reply subscription is bounded (`reply_queue`); a session
that falls that far behind is ended with `overloaded` (close 1013).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

import structlog

from agent import topics
from agent.bus.base import EventBus, Subscription
from agent.errors import BusClosedError, BusError, BusOverflowError, WireError
from agent.events import (
    AgentMessage,
    Cancel,
    Channel,
    Event,
    SessionClosed,
    SessionFound,
    SessionOpened,
    Takeover,
)
from agent.gateway.admission import Admission
from agent.gateway.limits import ConnectionLimits
from agent.gateway.protocol import (
    ErrorCode,
    FeedbackMessage,
    ServerMessage,
    UserMessage,
    error_message,
    feedback_ack,
)
from agent.gateway.roster import Availability
from agent.gateway.session import ReplyEvent, SessionCore, TurnRefused
from agent.gateway.summaries import TurnNotes
from agent.lazy_deadline import LazyTimeout
from agent.metrics import Metrics

__all__ = ["CLOSE_GOING_AWAY", "CLOSE_OVERLOADED", "Deliver", "Ending", "SessionRelay"]

CLOSE_GOING_AWAY: Final = 1001
CLOSE_OVERLOADED: Final = 1013

_STRANDED_CHECK_S: Final = 0.5
"""How often a session with a turn in flight and nothing heard looks for a change of route."""


def _never() -> float:
    return -math.inf


_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Ending:
    """The session is over for the reason given: the transport closes with `code`."""

    code: int
    reason: str


Deliver = Callable[[ServerMessage | Ending], Awaitable[None]]
"""Where the relay sends server messages, and finally an `Ending` when the session must end."""


class SessionRelay:
    """A new session (a fresh random id) of `user_id` in `tenant`, or the one `resume`
    found; an async context manager, subscribed to the session's replies while entered.

    Run `pump` in a task of the owner's while the relay is entered; `submit`,
    `cancel` and `feedback` may be called from any task meanwhile.
    """

    def __init__(
        self,
        bus: EventBus,
        *,
        user_id: str,
        tenant: str,
        limits: ConnectionLimits,
        metrics: Metrics,
        channel: Channel,
        deliver: Deliver,
        workers: Callable[[], Availability],
        admission: Admission,
        route_changed: Callable[[], float] = _never,
        resume: SessionFound | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`route_changed`: when (`clock` time) a worker last came or went or the
        bus connection came back; a turn in flight then is published again at once."""
        core = SessionCore(
            session_id=secrets.token_hex(16) if resume is None else resume.session_id,
            user_id=user_id,
            tenant=tenant,
            remembered_turns=limits.remembered_turns,
            admission=admission,
        )
        if resume is not None:
            core.resume(resume, now=clock())
        self.core = core
        self._bus = bus
        self._limits = limits
        self._metrics = metrics
        self._channel = channel
        self._deliver = deliver
        self._workers = workers
        self._route_changed = route_changed
        self._clock = clock
        self._notes = TurnNotes(
            session_id=core.session_id, user_id=core.user_id, tenant=core.tenant, channel=channel
        )
        self._subscription: Subscription | None = None
        self._stack: AsyncExitStack | None = None
        self._reply_wait: LazyTimeout | None = None
        self._log = _log.bind(session_id=core.session_id)

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError("this SessionRelay is already entered")
        core = self.core
        async with AsyncExitStack() as stack:
            self._subscription = await stack.enter_async_context(
                self._bus.subscribe(
                    topics.reply(core.session_id), max_queued=self._limits.reply_queue
                )
            )
            self._stack = stack.pop_all()
        await self._tell_staff(
            SessionOpened(
                session_id=core.session_id,
                user_id=core.user_id,
                tenant=core.tenant,
                channel=self._channel,
                at=self._clock(),
            )
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack, self._subscription = self._stack, None, None
        self.core.close()
        try:
            await self._tell_staff(SessionClosed(session_id=self.core.session_id, at=self._clock()))
        finally:
            if stack is not None:
                await stack.__aexit__(exc_type, exc, tb)

    # Outgoing

    async def submit(self, message: UserMessage) -> None:
        """Publish the user's turn (after cancelling the one in flight: barge-in).

        Raises `WireError` for a duplicate id, `unavailable` when no worker is
        there to answer, `overloaded` (with `retry_after_ms`) when the process
        has more turns in flight than it can answer in time; `BusError` when the
        bus fails, and the turn is then withdrawn (`SessionCore.withdraw`). Not safe
        to cancel once the turn is being published. A turn sent again after resuming
        the session is not published again: its reply is shown again if it was
        answered meanwhile, or is on its way.
        """
        resent = self.core.resent(message.id)
        if resent is not None:
            self._log.info("turn sent again after resuming", turn_id=message.id)
            for reply in resent:
                await self._deliver(reply)
            return
        if self._workers() is Availability.NONE:
            raise WireError(
                ErrorCode.UNAVAILABLE,
                "no worker is available to answer; try again shortly",
                turn_id=message.id,
            )
        try:
            cancels, turn = self.core.user_message(message, now=self._clock())
        except TurnRefused as refused:
            self._log.warning("turn refused: overloaded", retry_after_ms=refused.retry_after_ms)
            await self._publish_cancels(refused.cancels)
            raise
        log = self._log.bind(turn_id=turn.turn_id)
        for cancel in cancels:
            log.info("barge-in", cancelled=cancel.turn_id)
        await self._publish_cancels(cancels)
        self._notes.started(turn.turn_id, turn.text)
        try:
            await self._bus.publish(topics.turn(self.core.session_id), turn)
        except BusError:
            self.core.withdraw(turn.turn_id)  # the client sends it again, as a new message
            self._notes.forget(turn.turn_id)
            raise
        log.info("turn published", seq=turn.seq, chars=len(turn.text))
        self._arm_redelivery()

    async def cancel(self, turn_id: str | None = None) -> None:
        """Stop the reply to `turn_id`, or every reply in flight; a no-op for none."""
        await self._publish_cancels(self.core.cancel(turn_id))

    async def feedback(self, message: FeedbackMessage) -> None:
        """Publish the user's rating and acknowledge it; `WireError` for a foreign turn."""
        event = self.core.feedback(message)
        await self._bus.publish(topics.feedback(self.core.session_id), event)
        await self._deliver(feedback_ack(message.turn_id))

    async def _publish_cancels(self, cancels: list[Cancel]) -> None:
        for cancel in cancels:
            await self._bus.publish(topics.cancel(self.core.session_id), cancel)

    async def _tell_staff(self, event: Event) -> None:
        """Publish on the watch topic; staff consoles missing one event is no reason to fail."""
        try:
            await self._bus.publish(topics.watch(self.core.session_id), event)
        except BusError as exc:
            self._log.warning(
                "could not tell staff consoles", event_type=event.type, error=str(exc)
            )

    # Incoming

    async def pump(self) -> None:
        """Deliver the session's reply events until the subscription ends.

        Ends with an `Ending` delivered when the subscriber fell behind
        (`overloaded`) or the bus shut down. Safe to cancel.
        """
        subscription = self._subscription
        if subscription is None:
            raise RuntimeError("pump() needs the relay entered")
        self._reply_wait = reply_wait = LazyTimeout()
        try:
            await self._pump(subscription, reply_wait)
        finally:
            reply_wait.close()
            self._reply_wait = None

    async def _pump(self, subscription: Subscription, reply_wait: LazyTimeout) -> None:
        try:
            while True:
                try:
                    async with asyncio.timeout(None) as wait:
                        reply_wait.watch(wait, self._redelivery_due())
                        delivery = await subscription.get()
                except TimeoutError:
                    await self._redeliver()
                    continue
                finally:
                    reply_wait.unwatch()
                await self._on_event(delivery.event)
        except BusClosedError:
            pass
        except BusOverflowError:
            self._log.warning("reply subscription overflowed; closing")
            self._metrics.errors.labels(ErrorCode.OVERLOADED.value).inc()
            await self._deliver(
                error_message(ErrorCode.OVERLOADED, "replies arrived faster than they were read")
            )
            await self._deliver(Ending(CLOSE_OVERLOADED, "overloaded"))
            return
        await self._deliver(Ending(CLOSE_GOING_AWAY, "shutting down"))

    async def _on_event(self, event: Event) -> None:
        now = self._clock()
        match event:
            case Takeover():
                notice, cancels = self.core.takeover(event)
                self._log.info("takeover", active=event.active)
                await self._publish_cancels(cancels)
                await self._deliver(notice)
            case AgentMessage():
                await self._deliver(self.core.agent_message(event, now=now))
            case _ if isinstance(event, ReplyEvent):
                messages = self.core.server_messages(event, now=now)
                if not messages:
                    return
                summary = self._notes.observe(event, now=now)
                for message in messages:
                    await self._deliver(message)
                if summary is not None:
                    await self._tell_staff(summary)

    def _arm_redelivery(self) -> None:
        """Let a wait for replies under way end by the new `_redelivery_due`."""
        if self._reply_wait is not None:
            self._reply_wait.move(self._redelivery_due())

    def _redelivery_due(self) -> float | None:
        """When (loop time) the wait for replies ends: once the oldest turn is overdue,
        and soon while a turn is in flight (the way to the workers may change)."""
        due = self.core.redelivery_due(self._limits.redeliver_after_s)
        if due is None:
            return None
        now = self._clock()
        due = min(due, now + _STRANDED_CHECK_S)
        return asyncio.get_running_loop().time() + max(0.0, due - now)

    async def _redeliver(self) -> None:
        """Publish again the turns a change of route may have stranded, and an unanswered
        turn; give up on one after the last attempt."""
        for turn in self.core.stranded(route_changed=self._route_changed()):
            self._log.warning("the route changed; publishing a turn again", turn_id=turn.turn_id)
            try:
                await self._bus.publish(topics.turn(self.core.session_id), turn)
            except BusError:
                self._log.warning("re-publishing failed", exc_info=True)
        limits = self._limits
        overdue = self.core.overdue(
            now=self._clock(), after=limits.redeliver_after_s, attempts=limits.redeliver_attempts
        )
        if isinstance(overdue, str):
            self._log.error("no worker answered the turn", turn_id=overdue)
            self._notes.forget(overdue)
            self._metrics.errors.labels(ErrorCode.TURN_TIMEOUT.value).inc()
            await self._deliver(
                error_message(
                    ErrorCode.TURN_TIMEOUT,
                    "no reply came for this message; send it again",
                    turn_id=overdue,
                )
            )
        elif overdue is not None:
            self._log.warning("publishing an unanswered turn again", turn_id=overdue.turn_id)
            try:
                await self._bus.publish(topics.turn(self.core.session_id), overdue)
            except BusError:
                self._log.warning("re-publishing failed", exc_info=True)
