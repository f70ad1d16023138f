"""One client session over one WebSocket connection: the asyncio adapter.

The protocol logic lives in `agent.gateway.protocol` (parsing, message
building, `SessionCore`); this module only moves frames and events:

* authenticate (handshake token, or a `hello` frame within `hello_timeout_s`);
* subscribe to the session's reply topic, then send `ready`;
* in one `asyncio.TaskGroup`: read client frames (rate limit, parse, publish),
  pump reply events into the outbox, and send the outbox in order.

Overflow policy: the outbox is bounded; producers wait, so a client that does
not read backs up its bus subscription, which is then cut off (`overloaded`,
close 1013) instead of slowing anyone else.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from agent import topics
from agent.bus.base import EventBus, Subscription
from agent.errors import AuthError, BusClosedError, BusError, BusOverflowError
from agent.gateway.auth import TokenAuthority
from agent.gateway.limits import ConnectionLimits, TokenBucket
from agent.gateway.protocol import (
    CancelMessage,
    ClientMessage,
    ErrorCode,
    FeedbackMessage,
    Hello,
    ServerMessage,
    UserMessage,
    WireError,
    encode_message,
    error_message,
    feedback_ack,
    parse_frame,
    ready_message,
)
from agent.gateway.session import ReplyEvent, SessionCore
from agent.metrics import Metrics

__all__ = ["serve_connection"]

_log = structlog.get_logger(__name__)

CLOSE_UNAUTHORIZED: Final = CloseCode.POLICY_VIOLATION  # 1008
CLOSE_OVERLOADED: Final = CloseCode.TRY_AGAIN_LATER  # 1013
CLOSE_GOING_AWAY: Final = CloseCode.GOING_AWAY  # 1001


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


_Outgoing = ServerMessage | _Close


async def serve_connection(
    websocket: ServerConnection,
    *,
    bus: EventBus,
    authority: TokenAuthority,
    metrics: Metrics,
    limits: ConnectionLimits,
    user_id: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> None:
    """Serve one client until the connection closes.

    `user_id` is set when the handshake carried a valid token; otherwise the
    first frame must be `hello` with one. Safe to cancel: the session's
    tasks are cancelled with it and its subscription ends.
    """
    session = _Session(
        websocket,
        bus=bus,
        authority=authority,
        metrics=metrics,
        limits=limits,
        clock=clock,
        wall_clock=wall_clock,
    )
    await session.run(user_id)


class _Session:
    def __init__(
        self,
        websocket: ServerConnection,
        *,
        bus: EventBus,
        authority: TokenAuthority,
        metrics: Metrics,
        limits: ConnectionLimits,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self._ws = websocket
        self._bus = bus
        self._authority = authority
        self._metrics = metrics
        self._limits = limits
        self._clock = clock
        self._wall_clock = wall_clock
        self._outbox: asyncio.Queue[_Outgoing] = asyncio.Queue(limits.outbox)
        self._reply_wait: asyncio.Timeout | None = None
        self._log = _log

    async def run(self, user_id: str | None) -> None:
        if user_id is None:
            user_id = await self._authenticate()
            if user_id is None:
                return
        session_id = secrets.token_hex(16)
        self._log = _log.bind(session_id=session_id)
        self._log.info("session started")
        self._log.debug("session user", user_id=user_id)
        core = SessionCore(
            session_id=session_id,
            user_id=user_id,
            remembered_turns=self._limits.remembered_turns,
        )
        try:
            async with self._bus.subscribe(
                topics.reply(session_id), max_queued=self._limits.reply_queue
            ) as subscription:
                self._outbox.put_nowait(ready_message(session_id, user_id))
                await self._run_tasks(core, subscription)
        except BusError:
            self._log.warning("bus unavailable for the session", exc_info=True)
            await self._fail(ErrorCode.INTERNAL, "the service is unavailable; try again later")
        except Exception:
            self._log.exception("session failed")
            await self._fail(ErrorCode.INTERNAL, "internal error")
        finally:
            self._log.info("session ended")

    async def _run_tasks(self, core: SessionCore, subscription: Subscription) -> None:
        async with asyncio.TaskGroup() as tasks:
            sender = tasks.create_task(self._send_outbox())
            pump = tasks.create_task(self._pump_replies(core, subscription))
            try:
                await self._read_frames(core)
            finally:
                sender.cancel()
                pump.cancel()

    # Authentication

    async def _authenticate(self) -> str | None:
        """The user id of a valid `hello`, or None after refusing the client."""
        timeout = self._limits.hello_timeout_s
        try:
            async with asyncio.timeout(timeout):
                frame = await self._ws.recv()
        except TimeoutError:
            await self._refuse(f"send hello with a token within {timeout:g} s")
            return None
        except ConnectionClosed:
            return None
        try:
            message = parse_frame(frame, max_bytes=self._limits.soft_frame_bytes)
        except WireError:
            message = None
        self._count_frame(message)
        if not isinstance(message, Hello) or message.token is None:
            await self._refuse("the first message must be hello with a token")
            return None
        try:
            return self._authority.verify(message.token)
        except AuthError as exc:
            await self._refuse(str(exc))
            return None

    async def _refuse(self, reason: str) -> None:
        self._log.info("client refused", code=ErrorCode.UNAUTHORIZED.value)
        self._metrics.errors.labels(ErrorCode.UNAUTHORIZED.value).inc()
        try:
            await self._ws.send(
                encode_message(error_message(ErrorCode.UNAUTHORIZED, reason)), text=True
            )
        except ConnectionClosed:
            return
        await self._ws.close(CLOSE_UNAUTHORIZED, "unauthorized")

    async def _fail(self, code: ErrorCode, message: str) -> None:
        """Tell the client the session cannot go on, and close (1011)."""
        self._metrics.errors.labels(code.value).inc()
        try:
            await self._ws.send(encode_message(error_message(code, message)), text=True)
        except ConnectionClosed:
            return
        await self._ws.close(CloseCode.INTERNAL_ERROR, code.value)

    # Client frames

    async def _read_frames(self, core: SessionCore) -> None:
        limits = self._limits
        bucket = TokenBucket(rate_per_s=limits.rate_per_s, burst=limits.burst, now=self._clock())
        while True:
            try:
                async with asyncio.timeout(limits.idle_timeout_s):
                    frame = await self._ws.recv()
            except TimeoutError:
                self._log.info("closing idle connection")
                await self._ws.close(CLOSE_GOING_AWAY, "idle")
                return
            except ConnectionClosed:
                return
            if not bucket.allow(self._clock()):
                self._metrics.frames.labels("rate_limited").inc()
                await self._send_error(ErrorCode.RATE_LIMITED, "too many messages; slow down")
                continue
            try:
                message = parse_frame(frame, max_bytes=limits.soft_frame_bytes)
            except WireError as exc:
                self._count_frame(None)
                await self._send_error(exc.code, exc.message, turn_id=exc.turn_id)
                continue
            self._count_frame(message)
            if not await self._handle(core, message):
                return

    async def _handle(self, core: SessionCore, message: ClientMessage) -> bool:
        """Act on one client message; False once the connection must end."""
        try:
            match message:
                case UserMessage():
                    await self._accept_turn(core, message)
                case CancelMessage():
                    for cancel in core.cancel():
                        await self._bus.publish(topics.cancel(core.session_id), cancel)
                case FeedbackMessage():
                    feedback = core.feedback(message)
                    await self._bus.publish(topics.feedback(core.session_id), feedback)
                    await self._outbox.put(feedback_ack(message.turn_id))
                case Hello(token=token):
                    return await self._hello_again(core, token)
        except WireError as exc:
            await self._send_error(exc.code, exc.message, turn_id=exc.turn_id)
        except BusError:
            self._log.warning("publish failed", exc_info=True)
            turn_id = message.id if isinstance(message, UserMessage) else None
            await self._send_error(
                ErrorCode.INTERNAL, "the message could not be delivered; try again", turn_id=turn_id
            )
        return True

    async def _accept_turn(self, core: SessionCore, message: UserMessage) -> None:
        cancels, turn = core.user_message(message, now=self._wall_clock())
        log = self._log.bind(turn_id=turn.turn_id)
        for cancel in cancels:
            log.info("barge-in", cancelled=cancel.turn_id)
            await self._bus.publish(topics.cancel(core.session_id), cancel)
        await self._bus.publish(topics.turn(core.session_id), turn)
        log.info("turn published", seq=turn.seq, chars=len(turn.text))
        self._arm_redelivery(core)

    async def _hello_again(self, core: SessionCore, token: str | None) -> bool:
        if token is not None:
            try:
                user_id = self._authority.verify(token)
            except AuthError as exc:
                await self._queue_refusal(str(exc))
                return False
            if user_id != core.user_id:
                await self._queue_refusal("the token names a different user")
                return False
        await self._outbox.put(ready_message(core.session_id, core.user_id))
        return True

    async def _queue_refusal(self, reason: str) -> None:
        self._metrics.errors.labels(ErrorCode.UNAUTHORIZED.value).inc()
        await self._outbox.put(error_message(ErrorCode.UNAUTHORIZED, reason))
        await self._outbox.put(_Close(CLOSE_UNAUTHORIZED, "unauthorized"))
        await self._ws.wait_closed()

    async def _send_error(self, code: str, message: str, *, turn_id: str | None = None) -> None:
        self._metrics.errors.labels(code).inc()
        self._log.info("client error", code=code, turn_id=turn_id)
        await self._outbox.put(error_message(code, message, turn_id=turn_id))

    def _count_frame(self, message: ClientMessage | None) -> None:
        kind = {
            Hello: "hello",
            UserMessage: "user_message",
            FeedbackMessage: "feedback",
            CancelMessage: "cancel",
        }.get(type(message), "invalid")
        self._metrics.frames.labels(kind).inc()

    # Server messages

    async def _pump_replies(self, core: SessionCore, subscription: Subscription) -> None:
        try:
            while True:
                try:
                    async with asyncio.timeout(None) as self._reply_wait:
                        self._arm_redelivery(core)
                        delivery = await subscription.get()
                except TimeoutError:
                    await self._redeliver(core)
                    continue
                finally:
                    self._reply_wait = None
                event = delivery.event
                if not isinstance(event, ReplyEvent):
                    continue
                message = core.server_message(event, now=self._wall_clock())
                if message is not None:
                    await self._outbox.put(message)
        except BusClosedError:
            pass
        except BusOverflowError:
            self._log.warning("reply subscription overflowed; closing")
            self._metrics.errors.labels(ErrorCode.OVERLOADED.value).inc()
            await self._outbox.put(
                error_message(ErrorCode.OVERLOADED, "replies arrived faster than they were read")
            )
            await self._outbox.put(_Close(CLOSE_OVERLOADED, "overloaded"))
            return
        # The bus ended the subscription: it is shutting down.
        await self._outbox.put(_Close(CLOSE_GOING_AWAY, "shutting down"))

    def _arm_redelivery(self, core: SessionCore) -> None:
        """Let the wait for replies end when the oldest turn becomes overdue."""
        due = core.redelivery_due(self._limits.redeliver_after_s)
        wait = self._reply_wait
        if due is not None and wait is not None and not wait.expired():
            loop_time = asyncio.get_running_loop().time()
            wait.reschedule(loop_time + max(0.0, due - self._wall_clock()))

    async def _redeliver(self, core: SessionCore) -> None:
        """Publish an unanswered turn again, or give up on it after the last attempt."""
        limits = self._limits
        overdue = core.overdue(
            now=self._wall_clock(),
            after=limits.redeliver_after_s,
            attempts=limits.redeliver_attempts,
        )
        if isinstance(overdue, str):
            self._log.error("no worker answered the turn", turn_id=overdue)
            await self._send_error(
                ErrorCode.TURN_TIMEOUT,
                "no reply came for this message; send it again",
                turn_id=overdue,
            )
        elif overdue is not None:
            self._log.warning("publishing an unanswered turn again", turn_id=overdue.turn_id)
            try:
                await self._bus.publish(topics.turn(core.session_id), overdue)
            except BusError:
                self._log.warning("re-publishing failed", exc_info=True)

    async def _send_outbox(self) -> None:
        while True:
            item = await self._outbox.get()
            if isinstance(item, _Close):
                await self._ws.close(item.code, item.reason)
                return
            try:
                await self._ws.send(encode_message(item), text=True)
            except ConnectionClosed:
                return
