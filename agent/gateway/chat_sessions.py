"""The conversations of HTTP API users: one session per (tenant, user), kept between requests.

Each request is a turn of its user's session, so a user's turns over HTTP share
the conversation, the mood and the history, as over `/ws`. A session lives in a
task of this object's, which owns its relay; it ends after `idle_s` without a
request. A request that ends early (the client went away) cancels its turn, like
a barge-in; a second request of the same user while one streams barges in on it.

Overflow policy: at most `max_sessions` sessions; a new user then ends the
longest-idle session with no request running, or is refused (`HttpBusy`).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Self

import structlog

from agent.bus.base import EventBus
from agent.errors import BusError
from agent.gateway.admission import Admission
from agent.gateway.limits import ConnectionLimits
from agent.gateway.protocol import ErrorCode, ServerMessage, UserMessage
from agent.gateway.relay import Ending, SessionRelay
from agent.gateway.roster import Availability
from agent.gateway.session import TurnRefused
from agent.metrics import Metrics

__all__ = ["ChatSessions", "ChatTurn", "ChatUser", "HttpBusy"]

_log = structlog.get_logger(__name__)

_TURN_QUEUE: Final = 1024


class HttpBusy(Exception):
    """Every session slot holds a running request: the client should retry later."""


@dataclass(frozen=True, slots=True)
class ChatUser:
    tenant: str
    user_id: str


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """A turn in flight: its ids, and its server messages until it ends."""

    session_id: str
    turn_id: str
    messages: AsyncIterator[ServerMessage]


@dataclass(frozen=True, slots=True)
class _Ended:
    """The session ended before the turn did (the gateway stops, or the client fell behind)."""

    reason: str


def _end(queue: asyncio.Queue[ServerMessage | _Ended], reason: str) -> None:
    """Tell a turn's reader the session ended, making room if it is that far behind."""
    while True:
        try:
            queue.put_nowait(_Ended(reason))
            return
        except asyncio.QueueFull:
            queue.get_nowait()


@dataclass(slots=True)
class _Session:
    user: ChatUser
    relay: SessionRelay | None = None
    turns: dict[str, asyncio.Queue[ServerMessage | _Ended]] = field(default_factory=dict)
    requests: int = 0
    last_used: float = 0.0
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    failure: BaseException | None = None
    tasks: asyncio.TaskGroup | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def deliver(self, message: ServerMessage | Ending) -> None:
        if isinstance(message, Ending):
            for ending in self.turns.values():
                _end(ending, message.reason)
            self.stop.set()
            return
        reader = self.turns.get(str(message.get("turn_id")))
        if reader is not None:  # messages of no turn (takeover, agent) have no HTTP reader
            await reader.put(message)


class ChatSessions:
    """An async context manager owning every HTTP user's session task."""

    def __init__(
        self,
        bus: EventBus,
        *,
        limits: ConnectionLimits,
        metrics: Metrics,
        workers: Callable[[], Availability],
        admission: Admission,
        route_changed: Callable[[], float],
        idle_s: float = 1800.0,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus = bus
        self._limits = limits
        self._metrics = metrics
        self._workers = workers
        self._route_changed = route_changed
        self._admission = admission
        self._idle_s = idle_s
        self._max = max_sessions
        self._clock = clock
        self._sessions: dict[ChatUser, _Session] = {}
        self._group: asyncio.TaskGroup | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    async def __aenter__(self) -> Self:
        if self._group is not None:
            raise RuntimeError("ChatSessions is already running")
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        group, self._group = self._group, None
        for session in self._sessions.values():
            session.stop.set()
        if group is not None:
            await group.__aexit__(exc_type, exc, tb)

    def refusal(self) -> TurnRefused | None:
        """The `overloaded` a new turn would get now, if any: a stream is refused
        before it starts."""
        retry_after_ms = self._admission.refusal(now=time.time())
        if retry_after_ms is None:
            return None
        self._metrics.errors.labels(ErrorCode.OVERLOADED.value).inc()
        return TurnRefused(None, retry_after_ms)

    @asynccontextmanager
    async def turn(self, user: ChatUser, text: str) -> AsyncIterator[ChatTurn]:
        """Publish `text` as the user's next turn; iterate its server messages until it ends.

        Raises `WireError` (`unavailable` when no worker is there, `overloaded`
        when the process has too many turns in flight), `BusError`
        (from the iteration too, when the session ends first) or `HttpBusy`.
        Leaving the block before the turn ended cancels it.
        """
        session = await self._acquire(user)
        turn_id = f"h{secrets.token_hex(8)}"
        queue: asyncio.Queue[ServerMessage | _Ended] = asyncio.Queue(_TURN_QUEUE)
        session.turns[turn_id] = queue
        relay = session.relay
        assert relay is not None
        finished = False
        try:
            await relay.submit(UserMessage(id=turn_id, text=text))

            async def messages() -> AsyncIterator[ServerMessage]:
                nonlocal finished
                while not finished:
                    item = await queue.get()
                    if isinstance(item, _Ended):
                        raise BusError(f"the session ended: {item.reason}")
                    finished = item.get("type") in ("reply_end", "error")
                    yield item

            yield ChatTurn(relay.core.session_id, turn_id, messages())
        finally:
            del session.turns[turn_id]
            session.requests -= 1
            session.last_used = self._clock()
            if not finished and session.tasks is not None and turn_id in relay.core.in_flight:
                session.tasks.create_task(self._cancel(relay, turn_id))

    async def _cancel(self, relay: SessionRelay, turn_id: str) -> None:
        try:
            await relay.cancel(turn_id)
        except BusError as exc:
            _log.warning("could not cancel an abandoned turn", turn_id=turn_id, error=str(exc))

    async def _acquire(self, user: ChatUser) -> _Session:
        session = self._sessions.get(user)
        if session is None or session.stop.is_set():
            session = self._open(user)
        session.requests += 1
        try:
            await session.opened.wait()
        except BaseException:
            session.requests -= 1
            raise
        if session.failure is not None:
            session.requests -= 1
            raise BusError("the session could not subscribe to its replies") from session.failure
        return session

    def _open(self, user: ChatUser) -> _Session:
        if self._group is None:
            raise RuntimeError("ChatSessions is not running")
        if len(self._sessions) >= self._max:
            self._evict_one()
        session = _Session(user, last_used=self._clock())
        self._sessions[user] = session
        self._group.create_task(self._run(session))
        return session

    def _evict_one(self) -> None:
        idle = [s for s in self._sessions.values() if s.requests == 0 and not s.stop.is_set()]
        if not idle:
            raise HttpBusy("too many conversations are running; try again shortly")
        min(idle, key=lambda s: s.last_used).stop.set()

    async def _run(self, session: _Session) -> None:
        relay = SessionRelay(
            self._bus,
            user_id=session.user.user_id,
            tenant=session.user.tenant,
            limits=self._limits,
            metrics=self._metrics,
            channel="http",
            deliver=session.deliver,
            workers=self._workers,
            admission=self._admission,
            route_changed=self._route_changed,
        )
        try:
            async with relay, asyncio.TaskGroup() as tasks:
                session.relay, session.tasks = relay, tasks
                session.opened.set()
                pump = tasks.create_task(relay.pump())
                await self._until_idle(session)
                pump.cancel()
        except Exception as exc:  # one user's session failing must not end the others
            _log.warning(
                "an HTTP session failed", session_id=relay.core.session_id, error=repr(exc)
            )
            session.failure = exc
        finally:
            session.tasks = None
            session.stop.set()
            session.opened.set()
            if self._sessions.get(session.user) is session:
                del self._sessions[session.user]
            for queue in session.turns.values():
                _end(queue, "the conversation ended")

    async def _until_idle(self, session: _Session) -> None:
        """Return once the session has been idle for `idle_s` with no request, or is stopped."""
        while not session.stop.is_set():
            wait = session.last_used + self._idle_s - self._clock()
            if session.requests == 0 and wait <= 0:
                return
            try:
                async with asyncio.timeout(max(wait, 1.0)):
                    await session.stop.wait()
            except TimeoutError:
                continue
