"""The dialogue manager: the worker that takes turns off the bus and answers them.

Turns of one session run strictly in order in a per-session lane; the turn
ledger makes each run exactly once even when several workers share the turn
topic. A `Cancel` for the turn a lane is running interrupts its reply
(barge-in); one for a turn not yet started makes it end at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import structlog

from agent import topics
from agent.bus.base import EventBus, Subscription
from agent.dialogue.claims import ClaimTimings, TurnClaims
from agent.dialogue.lanes import Lane
from agent.dialogue.pipeline import (
    PipelineSettings,
    Stages,
    TurnPipeline,
)
from agent.dialogue.publishing import TurnEvents
from agent.dialogue.recovery import TurnRecovery
from agent.dialogue.session import CancelledTurns, SessionCache
from agent.dialogue.unanswered import SKIPPED_GENERATOR
from agent.emotion.conversation import replay_mood
from agent.errors import (
    BusOverflowError,
    HeartlineError,
    StageError,
)
from agent.events import (
    Cancel,
    Event,
    Feedback,
    ReplyEnded,
    SessionClosed,
    TurnFailed,
    UserTurn,
    encode,
)
from agent.metrics import Metrics
from agent.values import EmotionReading
from memory.ledger import ClaimOutcome, TurnLedger
from memory.records import FeedbackRecord

__all__ = ["DialogueManager", "ManagerSettings", "new_worker_id"]

_log = structlog.get_logger(__name__)


def new_worker_id() -> str:
    """Unique per process: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagerSettings:
    group: str = "workers"
    context_turns: int = 10
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    # Timeouts
    lease: float = 30.0
    takeover_after: float = 2.0
    """Seconds without a beat from another worker before its claimed turns are taken over."""
    gap_timeout: float = 10.0
    claim_retry_min: float = 0.002
    claim_retry_max: float = 0.1
    sweep_interval: float = 5.0
    drain_timeout: float = 10.0
    # Limits
    max_sessions: int = 50_000
    cancelled_per_session: int = 1_000


def _result(ended: ReplyEnded) -> str:
    """The outcome a finished turn counts under in `heartline_turns_total`."""
    if ended.generator == SKIPPED_GENERATOR:
        return "skipped"
    return "interrupted" if ended.interrupted else "answered"


def _let_go(reading: asyncio.Future[EmotionReading]) -> None:
    """A reading the turn did not use (it waits, was answered, failed or was skipped):
    stop it, or take its failure so that it is not reported as never retrieved."""
    if not reading.done():
        reading.cancel()
    elif not reading.cancelled():
        reading.exception()


class DialogueManager:
    """Consumes turns, cancels and feedback; an async context manager owning its tasks."""

    def __init__(
        self,
        bus: EventBus,
        stages: Stages,
        ledger: TurnLedger,
        *,
        metrics: Metrics,
        settings: ManagerSettings | None = None,
        worker_id: str | None = None,
        connected_since: Callable[[], float | None] | None = None,
    ) -> None:
        """`connected_since`: for a bus that can be cut off (MQTT), since when its
        connection has been up (`time.monotonic()`), None while it is down."""
        self._bus = bus
        self._stages = stages
        self._ledger = ledger
        self._metrics = metrics
        self._settings = settings or ManagerSettings()
        self.worker_id = worker_id or new_worker_id()
        self._pipeline = TurnPipeline(stages, self._settings.pipeline)
        self._sessions = SessionCache(
            context_turns=self._settings.context_turns, max_sessions=self._settings.max_sessions
        )
        self._lanes: dict[str, Lane] = {}
        self._cancelled = CancelledTurns(
            per_session=self._settings.cancelled_per_session,
            max_sessions=self._settings.max_sessions,
        )
        self._stack = contextlib.AsyncExitStack()
        self._group: asyncio.TaskGroup | None = None
        self._intake: contextlib.AsyncExitStack | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._lane_tasks: set[asyncio.Task[None]] = set()
        s = self._settings
        self._claims = TurnClaims(
            ledger,
            bus,
            worker_id=self.worker_id,
            timings=ClaimTimings(
                lease=s.lease,
                gap_timeout=s.gap_timeout,
                takeover_after=s.takeover_after,
                retry_min=s.claim_retry_min,
                retry_max=s.claim_retry_max,
            ),
        )
        self._recovery = TurnRecovery(
            self._ledger,
            worker_id=self.worker_id,
            enqueue=self._enqueue,
            takeover_after=self._settings.takeover_after,
            sweep_interval=self._settings.sweep_interval,
            connected_since=connected_since,
        )
        self.ready = False
        self.turns_answered = 0

    async def __aenter__(self) -> DialogueManager:
        if self._group is not None:
            raise RuntimeError("DialogueManager is already running")
        s = self._settings
        try:
            group = await self._stack.enter_async_context(asyncio.TaskGroup())
            cancels = await self._stack.enter_async_context(self._bus.subscribe(topics.ALL_CANCELS))
            # Turns and feedback stop first at shutdown, while cancels still flow.
            intake = await self._stack.enter_async_context(contextlib.AsyncExitStack())
            turns = await intake.enter_async_context(
                self._bus.subscribe(topics.ALL_TURNS, group=s.group)
            )
            feedback = await intake.enter_async_context(
                self._bus.subscribe(topics.ALL_FEEDBACK, group=s.group)
            )
            # What staff consoles see; a worker listens for sessions that closed.
            watched = await intake.enter_async_context(
                self._bus.subscribe(topics.ALL_WATCH, group=s.group)
            )
            beats = await intake.enter_async_context(self._bus.subscribe(topics.ALL_WORKERS))
        except BaseException:
            await self._stack.aclose()
            raise
        self._intake = intake
        self._group = group
        self._loops = [
            group.create_task(self._consume(turns, self._dispatch)),
            group.create_task(self._consume(cancels, self._dispatch)),
            group.create_task(self._consume(feedback, self._dispatch)),
            group.create_task(self._consume(watched, self._watch)),
            group.create_task(self._recovery.sweep()),
            group.create_task(self._recovery.follow_workers(beats)),
        ]
        self.ready = True
        _log.info("worker ready", worker_id=self.worker_id)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop taking turns, give the ones held `drain_timeout` to finish, then stop.

        Leaving the shared turn subscription first sends new turns to other
        workers; turns already received here still run, pending ones included.
        """
        self.ready = False
        for task in self._loops:
            task.cancel()
        if self._intake is not None:
            await self._intake.aclose()
        if self._lane_tasks:
            await asyncio.wait(self._lane_tasks, timeout=self._settings.drain_timeout)
        for lane in self._lanes.values():
            if lane.pending:
                _log.warning("unstarted turns dropped at shutdown", count=len(lane.pending))
            lane.pending.clear()
            if lane.interrupt is not None:
                lane.interrupt.set()
        self._group = None
        self._intake = None
        try:
            await self._stack.__aexit__(exc_type, exc, tb)
        finally:
            await self._recovery.let_go_of_unfinished()

    async def _consume(self, subscription: Subscription, handle: Callable[[Event], None]) -> None:
        """Hand each event to `handle`; a subscription cut off for falling behind is renewed.

        What it missed meanwhile: turns come back (their gateway publishes them again),
        cancels, feedback and closes do not.
        """
        async with contextlib.AsyncExitStack() as renewed:
            while True:
                try:
                    async for delivery in subscription:
                        handle(delivery.event)
                    return
                except BusOverflowError:
                    self._metrics.errors.labels("bus_overflow").inc()
                    topic = subscription.topic_filter
                    _log.error("worker fell behind; subscribing again", topic=topic)
                    subscription = await renewed.enter_async_context(
                        self._bus.subscribe(topic, group=subscription.group)
                    )

    def _dispatch(self, event: Event) -> None:
        match event:
            case UserTurn():
                self._enqueue(event)
            case Cancel():
                self._cancel(event)
            case Feedback():
                self._spawn(self._record_feedback(event))
            case _:
                _log.warning("unexpected event on a worker topic", type=event.type)

    def _watch(self, event: Event) -> None:
        """Let go of a session that closed, once the turns it left here are done."""
        if not isinstance(event, SessionClosed):
            return  # the rest of what staff consoles see
        lane = self._lanes.get(event.session_id)
        if lane is None:
            self._forget(event.session_id)
        else:
            lane.closed = True

    def _forget(self, session_id: str) -> None:
        self._sessions.forget(session_id)
        self._cancelled.forget(session_id)
        if self._group is not None:
            self._spawn(self._forget_ledger(session_id))

    async def _forget_ledger(self, session_id: str) -> None:
        try:
            await self._ledger.forget_session(session_id)
        except HeartlineError as exc:  # a few rows more are kept; nothing else depends on it
            _log.warning("closed session not forgotten", session_id=session_id, error=str(exc))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        if self._group is None:
            work.close()
            raise RuntimeError("DialogueManager is not running")
        return self._group.create_task(work)

    def _enqueue(self, turn: UserTurn) -> None:
        lane = self._lanes.get(turn.session_id)
        if lane is None:
            lane = self._lanes[turn.session_id] = Lane()
            task = self._spawn(self._run_lane(turn.session_id, lane))
            self._lane_tasks.add(task)
            task.add_done_callback(self._lane_tasks.discard)
        elif lane.current == turn.turn_id or any(
            t.turn_id == turn.turn_id for t, _ in lane.pending
        ):
            return  # a redelivery of a turn this worker already holds
        else:
            self._spawn(self._claims.hold(turn))
        lane.queue(turn, time.perf_counter())

    def _cancel(self, cancel: Cancel) -> None:
        self._cancelled.add(cancel.session_id, cancel.turn_id)
        lane = self._lanes.get(cancel.session_id)
        if lane is not None and lane.current == cancel.turn_id and lane.interrupt is not None:
            lane.interrupt.set()

    async def _run_lane(self, session_id: str, lane: Lane) -> None:
        try:
            while lane.pending:
                turn, received = lane.pending.pop(0)
                lane.current = turn.turn_id
                lane.interrupt = asyncio.Event()
                if self._cancelled.holds(turn.session_id, turn.turn_id):
                    lane.interrupt.set()
                try:
                    if await self._claim_and_run(turn, received, lane, lane.interrupt):
                        self._cancelled.discard(turn.session_id, turn.turn_id)
                    else:
                        lane.queue(turn, received)  # an earlier turn arrived: it goes first
                except HeartlineError as exc:
                    # The bus or the database failed: the turn stays unfinished in the
                    # ledger, and its lease brings it back to a worker later.
                    self._metrics.errors.labels("turn_abandoned").inc()
                    _log.error(
                        "turn abandoned until its lease ends",
                        session_id=turn.session_id,
                        turn_id=turn.turn_id,
                        error=str(exc),
                    )
                finally:
                    lane.current = None
                    lane.interrupt = None
        finally:
            if self._lanes.get(session_id) is lane:
                del self._lanes[session_id]
        if lane.closed:
            self._forget(session_id)

    async def _claim_and_run(
        self, turn: UserTurn, received: float, lane: Lane, interrupt: asyncio.Event
    ) -> bool:
        """Claim and answer the turn; False when it must wait behind an earlier turn.

        The emotion is read while the turn is claimed and the conversation caught up:
        in a shared ledger those are database round trips, and the reading needs
        neither. A turn cancelled before it started is not read.
        """
        reading = None
        if not interrupt.is_set():
            reading = asyncio.ensure_future(self._pipeline.recognize(turn))
        try:
            return await self._claim_then_run(turn, received, lane, interrupt, reading)
        finally:
            if reading is not None:
                _let_go(reading)

    async def _claim_then_run(
        self,
        turn: UserTurn,
        received: float,
        lane: Lane,
        interrupt: asyncio.Event,
        reading: asyncio.Future[EmotionReading] | None,
    ) -> bool:
        log = _log.bind(session_id=turn.session_id, turn_id=turn.turn_id, seq=turn.seq)
        payload = encode(turn)
        outcome = await self._claims.claim(
            turn,
            payload,
            earlier_arrived=lambda: bool(lane.pending) and lane.pending[0][0].seq < turn.seq,
        )
        if outcome is ClaimOutcome.WAIT:
            return False
        if outcome is ClaimOutcome.DONE:
            self._metrics.turns.labels("duplicate").inc()
            log.debug("turn already answered; its ending goes out again")
            await self._claims.repeat_ending(turn)
            return True
        queued_ms = (time.perf_counter() - received) * 1000.0
        state = self._sessions.get(turn.session_id)
        if turn.seq > 1 and state.last_seq != turn.seq - 1:
            # Another worker answered the turns in between: catch up from the store.
            state.conversation.clear()
            state.conversation.extend(
                await self._stages.store.conversation(
                    turn.session_id, limit=self._settings.context_turns, tenant=turn.tenant
                )
            )
            state.mood = replay_mood(e.emotion for e in state.conversation if e.emotion)
        publish_reply = TurnEvents(self._bus, turn.session_id, observe=self._observe)
        lane.lost = False
        lane.run = asyncio.ensure_future(
            self._pipeline.run(
                turn,
                state,
                publish=publish_reply,
                reading=reading,
                interrupt=interrupt,
                started=received,
                queued_ms=queued_ms,
            )
        )
        renewer = self._spawn(self._claims.keep(turn, payload, lost=lane.let_go))
        ending: ReplyEnded | TurnFailed
        try:
            ending = (await lane.run).ended
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not lane.lost or (current is not None and current.cancelling()):
                raise
            # Another worker runs it now: publish nothing more, leave it to that one.
            publish_reply.withdraw()
            self._metrics.turns.labels("taken_over").inc()
            log.warning("turn taken over by another worker; letting it go")
            return True
        except StageError as exc:
            self._metrics.turns.labels("failed").inc()
            self._metrics.errors.labels(f"{exc.stage}_failed").inc()
            log.error("turn failed", stage=exc.stage, error=str(exc), cause=repr(exc.__cause__))
            ending = TurnFailed(
                session_id=turn.session_id,
                turn_id=turn.turn_id,
                code=f"{exc.stage}_failed",
                message=str(exc),
            )
            await publish_reply(ending)
        except HeartlineError:
            raise  # the bus or the database: the lane leaves the turn to its lease
        except Exception:
            # A bug met by one turn fails that turn, not every session of this worker.
            self._metrics.turns.labels("failed").inc()
            self._metrics.errors.labels("internal").inc()
            log.exception("turn failed on an unexpected error")
            ending = TurnFailed(
                session_id=turn.session_id,
                turn_id=turn.turn_id,
                code="internal",
                message="the turn could not be answered",
            )
            await publish_reply(ending)
        else:
            result = _result(ending)
            self._metrics.turns.labels(result).inc()
            log.info("turn done", outcome=result, generator=ending.generator)
        finally:
            renewer.cancel()
            lane.run = None
        state.last_seq = turn.seq
        await self._ledger.complete(
            turn.session_id, turn.seq, worker=self.worker_id, ending=encode(ending)
        )
        self.turns_answered += 1
        return True

    def _observe(self, ended: ReplyEnded) -> None:
        if ended.text:
            self._metrics.ttft.observe(ended.ttft_ms / 1000.0)
        for stage, millis in ended.stages.items():
            self._metrics.stage.labels(stage).observe(millis / 1000.0)

    async def _record_feedback(self, feedback: Feedback) -> None:
        learner = self._stages.learner
        decided = self._sessions.peek(feedback.session_id, feedback.turn_id)
        if learner is not None and decided is not None:
            learner.learn(
                decided.features,
                decided.strategy,
                feedback=feedback.score,
                valence_before=decided.valence,
                valence_after=None,
            )
        try:
            await self._stages.store.record_feedback(
                FeedbackRecord(
                    session_id=feedback.session_id,
                    user_id=feedback.user_id,
                    turn_id=feedback.turn_id,
                    score=feedback.score,
                    created_at=time.time(),
                    tenant=feedback.tenant,
                )
            )
        except HeartlineError as exc:
            _log.error("feedback not recorded", session_id=feedback.session_id, error=str(exc))
