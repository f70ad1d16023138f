"""One client session over one WebSocket connection: the asyncio adapter.

The protocol logic lives in `agent.gateway.protocol` (parsing, message
building) and `SessionCore`; the traffic with the bus in `SessionRelay`. This
module only moves frames:

* authenticate (handshake token, or a `hello` frame within `hello_timeout_s`);
* enter the relay (subscribed to the session's replies), then send `ready`;
* in one `asyncio.TaskGroup`: read client frames (rate limit, parse, act) and
  pump reply events to the client. Whoever has a message sends it at once, in
  turn with the session's other sends (a lock keeps frames whole and in order):
  no queue and no sender task between a reply delta and its frame.

Overflow policy: a send waits while the connection's write buffer is full, so a
client that reads slowly backs up its own bus subscription and no one else's. A
client that reads nothing is not waited on: once one send has waited
`send_timeout_s`, or the subscription overflows, the session ends with
`overloaded` (close 1013) and frees what it held.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from agent.bus.base import EventBus
from agent.errors import AuthError, BusError
from agent.gateway.admission import Admission
from agent.gateway.auth import Principal, Role, TokenAuthority
from agent.gateway.http_server import SendStalled
from agent.gateway.limits import ConnectionLimits, TokenBucket
from agent.gateway.lookups import SessionLookups
from agent.gateway.protocol import (
    CancelMessage,
    ClientMessage,
    ErrorCode,
    FeedbackMessage,
    Hello,
    ServerMessage,
    UserMessage,
    WireError,
    encode_text,
    error_message,
    parse_frame,
    ready_message,
)
from agent.gateway.relay import CLOSE_GOING_AWAY, CLOSE_OVERLOADED, Ending, SessionRelay
from agent.gateway.roster import Availability
from agent.gateway.session import SessionCore
from agent.metrics import Metrics

__all__ = ["CLOSE_UNAUTHORIZED", "SessionEnds", "serve_connection"]

_log = structlog.get_logger(__name__)

CLOSE_UNAUTHORIZED: Final = 1008
CLOSE_INTERNAL: Final = 1011

_FRAME_KINDS: Final[dict[type, str]] = {
    Hello: "hello",
    UserMessage: "user_message",
    FeedbackMessage: "feedback",
    CancelMessage: "cancel",
}


class _Closed(Exception):
    """The client's side of the connection is gone."""


class _Stalled(_Closed):
    """The client reads nothing: a send found no room for `send_timeout_s` (the HTTP
    server's protocol keeps that deadline, so that a send with room takes no timer)."""


class _Socket:
    """The few things a session does with its WebSocket, with disconnects as `_Closed`."""

    __slots__ = ("_ws",)

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket

    async def recv(self) -> str | bytes:
        try:
            message = await self._ws.receive()
        except WebSocketDisconnected:
            raise _Closed from None
        if message["type"] == "websocket.disconnect":
            raise _Closed
        text: str | None = message.get("text")
        if text is not None:
            return text
        data: bytes = message.get("bytes") or b""
        return data

    async def send(self, text: str) -> None:
        try:
            await self._ws.send({"type": "websocket.send", "text": text})
        except SendStalled:
            raise _Stalled from None
        except (WebSocketDisconnect, WebSocketDisconnected, OSError):
            raise _Closed from None

    async def close(self, code: int, reason: str) -> None:
        try:
            await self._ws.close(code, reason)
        except (WebSocketDisconnect, WebSocketDisconnected, OSError, RuntimeError):
            return

    async def wait_closed(self) -> None:
        """Read until the client is gone (after a close the server sent)."""
        try:
            while True:
                await self.recv()
        except _Closed:
            return


class SessionEnds:
    """Lets the gateway end a session from outside (when it shuts down)."""

    __slots__ = ("ending", "requested")

    def __init__(self) -> None:
        self.ending: Ending | None = None
        self.requested = asyncio.Event()

    def request(self, ending: Ending) -> None:
        """End the session with `ending` after what is queued for the client."""
        if self.ending is None:
            self.ending = ending
            self.requested.set()


async def serve_connection(
    websocket: WebSocket,
    *,
    bus: EventBus,
    authority: TokenAuthority,
    metrics: Metrics,
    limits: ConnectionLimits,
    default_tenant: str,
    workers: Callable[[], Availability],
    admission: Admission,
    route_changed: Callable[[], float],
    lookups: SessionLookups,
    ends: SessionEnds,
    principal: Principal | None = None,
    resume: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> None:
    """Serve one accepted client until the connection closes.

    `principal` is set when the handshake carried a valid token; otherwise the
    first frame must be `hello` with one. `resume` names the session the client
    asks to go on with: if the workers know it as this user's, it is resumed,
    else the client gets a new one. Safe to cancel: the session's tasks are
    cancelled with it and its subscription ends.
    """
    session = _Session(
        _Socket(websocket),
        bus=bus,
        authority=authority,
        metrics=metrics,
        limits=limits,
        clock=clock,
        wall_clock=wall_clock,
    )
    await session.run(
        principal,
        default_tenant=default_tenant,
        workers=workers,
        admission=admission,
        route_changed=route_changed,
        ends=ends,
        lookups=lookups,
        resume=resume,
    )


@dataclass(frozen=True, slots=True)
class _Refusal:
    reason: str


class _Session:
    def __init__(
        self,
        socket: _Socket,
        *,
        bus: EventBus,
        authority: TokenAuthority,
        metrics: Metrics,
        limits: ConnectionLimits,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self._ws = socket
        self._bus = bus
        self._authority = authority
        self._metrics = metrics
        self._limits = limits
        self._clock = clock
        self._wall_clock = wall_clock
        self._sending = asyncio.Lock()
        self._ended = False  # the server closed the connection, or the client is gone
        self._log = _log

    async def run(
        self,
        principal: Principal | None,
        *,
        default_tenant: str,
        workers: Callable[[], Availability],
        admission: Admission,
        route_changed: Callable[[], float],
        ends: SessionEnds,
        lookups: SessionLookups,
        resume: str | None,
    ) -> None:
        if principal is None:
            principal = await self._authenticate()
            if principal is None:
                return
        tenant = principal.tenant or default_tenant
        found = None
        if resume is not None:
            found = await lookups.find(resume, user_id=principal.user_id, tenant=tenant)
        relay = SessionRelay(
            self._bus,
            user_id=principal.user_id,
            tenant=tenant,
            limits=self._limits,
            metrics=self._metrics,
            channel="ws",
            deliver=self._deliver,
            workers=workers,
            admission=admission,
            route_changed=route_changed,
            resume=found,
            clock=self._wall_clock,
        )
        session_id = relay.core.session_id
        self._log = _log.bind(session_id=session_id)
        self._log.info("session started", resumed=found is not None)
        resumed = None if resume is None else found is not None
        try:
            async with relay:
                await self._deliver(ready_message(session_id, principal.user_id, resumed=resumed))
                await self._run_tasks(relay, ends)
        except BusError:
            self._log.warning("bus unavailable for the session", exc_info=True)
            await self._fail(ErrorCode.INTERNAL, "the service is unavailable; try again later")
        except Exception:
            self._log.exception("session failed")
            await self._fail(ErrorCode.INTERNAL, "internal error")
        finally:
            self._log.info("session ended")

    async def _run_tasks(self, relay: SessionRelay, ends: SessionEnds) -> None:
        async with asyncio.TaskGroup() as tasks:
            pump = tasks.create_task(relay.pump())
            ender = tasks.create_task(self._end_when_asked(ends))
            try:
                await self._read_frames(relay)
            finally:
                pump.cancel()
                ender.cancel()

    async def _end_when_asked(self, ends: SessionEnds) -> None:
        await ends.requested.wait()
        await self._deliver(ends.ending or Ending(CLOSE_GOING_AWAY, "server shutting down"))

    # Authentication

    async def _authenticate(self) -> Principal | None:
        """Whom a valid `hello` names, or None after refusing the client."""
        timeout = self._limits.hello_timeout_s
        try:
            async with asyncio.timeout(timeout):
                frame = await self._ws.recv()
        except TimeoutError:
            await self._refuse(f"send hello with a token within {timeout:g} s")
            return None
        except _Closed:
            return None
        try:
            message = parse_frame(frame, max_bytes=self._limits.soft_frame_bytes)
        except WireError:
            message = None
        self._count_frame(message)
        if not isinstance(message, Hello) or message.token is None:
            await self._refuse("the first message must be hello with a token")
            return None
        verified = self._verify(message.token)
        if isinstance(verified, _Refusal):
            await self._refuse(verified.reason)
            return None
        return verified

    def _verify(self, token: str) -> Principal | _Refusal:
        try:
            principal = self._authority.verify(token)
        except AuthError as exc:
            return _Refusal(str(exc))
        if principal.role is not Role.USER:
            return _Refusal("an operator token does not open a user's session")
        return principal

    async def _refuse(self, reason: str) -> None:
        self._log.info("client refused", code=ErrorCode.UNAUTHORIZED.value)
        self._metrics.errors.labels(ErrorCode.UNAUTHORIZED.value).inc()
        try:
            await self._ws.send(encode_text(error_message(ErrorCode.UNAUTHORIZED, reason)))
        except _Closed:
            return
        await self._ws.close(CLOSE_UNAUTHORIZED, "unauthorized")

    async def _fail(self, code: ErrorCode, message: str) -> None:
        """Tell the client the session cannot go on, and close (1011)."""
        self._metrics.errors.labels(code.value).inc()
        try:
            await self._ws.send(encode_text(error_message(code, message)))
        except _Closed:
            return
        await self._ws.close(CLOSE_INTERNAL, code.value)

    # Client frames

    async def _read_frames(self, relay: SessionRelay) -> None:
        limits = self._limits
        bucket = TokenBucket(rate_per_s=limits.rate_per_s, burst=limits.burst, now=self._clock())
        while True:
            try:
                async with asyncio.timeout(limits.idle_timeout_s):
                    frame = await self._ws.recv()
            except TimeoutError:
                self._log.info("closing idle connection")
                await self._deliver(Ending(CLOSE_GOING_AWAY, "idle"))
                await self._ws.wait_closed()
                return
            except _Closed:
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
            if not await self._handle(relay, message):
                return

    async def _handle(self, relay: SessionRelay, message: ClientMessage) -> bool:
        """Act on one client message; False once the connection must end."""
        try:
            match message:
                case UserMessage():
                    await relay.submit(message)
                case CancelMessage():
                    await relay.cancel()
                case FeedbackMessage():
                    await relay.feedback(message)
                case Hello(token=token):
                    return await self._hello_again(relay.core, token)
        except WireError as exc:
            await self._send_error(
                exc.code, exc.message, turn_id=exc.turn_id, retry_after_ms=exc.retry_after_ms
            )
        except BusError:
            self._log.warning("publish failed", exc_info=True)
            turn_id = message.id if isinstance(message, UserMessage) else None
            await self._send_error(
                ErrorCode.INTERNAL, "the message could not be delivered; try again", turn_id=turn_id
            )
        return True

    async def _hello_again(self, core: SessionCore, token: str | None) -> bool:
        if token is not None:
            verified = self._verify(token)
            if isinstance(verified, _Refusal):
                await self._queue_refusal(verified.reason)
                return False
            if verified.user_id != core.user_id:
                await self._queue_refusal("the token names a different user")
                return False
        await self._deliver(ready_message(core.session_id, core.user_id))
        return True

    async def _queue_refusal(self, reason: str) -> None:
        self._metrics.errors.labels(ErrorCode.UNAUTHORIZED.value).inc()
        await self._deliver(error_message(ErrorCode.UNAUTHORIZED, reason))
        await self._deliver(Ending(CLOSE_UNAUTHORIZED, "unauthorized"))
        await self._ws.wait_closed()

    async def _send_error(
        self,
        code: str,
        message: str,
        *,
        turn_id: str | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        self._metrics.errors.labels(code).inc()
        self._log.info("client error", code=code, turn_id=turn_id)
        await self._deliver(
            error_message(code, message, turn_id=turn_id, retry_after_ms=retry_after_ms)
        )

    def _count_frame(self, message: ClientMessage | None) -> None:
        self._metrics.frames.labels(_FRAME_KINDS.get(type(message), "invalid")).inc()

    # Server messages

    async def _deliver(self, item: ServerMessage | Ending) -> None:
        """Send a message, or close the connection for an `Ending`; nothing after either
        the close or the client's going away."""
        async with self._sending:
            if self._ended:
                return
            if isinstance(item, Ending):
                self._ended = True
                await self._ws.close(item.code, item.reason)
                return
            try:
                await self._ws.send(encode_text(item))
            except _Stalled:
                self._ended = True
                self._log.warning("client reads nothing; closing", code=ErrorCode.OVERLOADED.value)
                self._metrics.errors.labels(ErrorCode.OVERLOADED.value).inc()
                await self._ws.close(CLOSE_OVERLOADED, "overloaded: replies were not read")
            except _Closed:
                self._ended = True
