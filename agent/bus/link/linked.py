"""A serving process's bus: the in-process bus, linked to the other processes through the hub.

A thin asyncio layer: local delivery is `InProcessBus.deliver`, the choice of
other processes is `RemoteInterests.route`, the frames are `wire`'s; this file
only moves bytes and keeps the connection's state.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Final, cast

import structlog

from agent.bus.base import DEFAULT_MAX_QUEUED, Subscription
from agent.bus.inprocess import InProcessBus
from agent.bus.link.outbox import Outbox
from agent.bus.link.routing import Counts, RemoteInterests
from agent.bus.link.wire import (
    DEFAULT_MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Deliver,
    FrameReader,
    Hello,
    HubMessage,
    Interest,
    PeerGone,
    PeerSubscribed,
    PeerUnsubscribed,
    Ready,
    Subscribe,
    Unsubscribe,
    Welcome,
    check_socket_path,
    encode_frame,
    encode_publish,
    parse_from_hub,
)
from agent.errors import BusClosedError, BusError, EventDecodeError
from agent.events import Event, decode, encode

__all__ = ["DEFAULT_HIGH_WATER_BYTES", "LinkedBus"]

_log = structlog.get_logger(__name__)

# Past this much unsent to the hub, `publish` waits for the hub to read.
DEFAULT_HIGH_WATER_BYTES: Final = 1024 * 1024


class LinkedBus:
    """An `EventBus` for one of several serving processes, linked to their `BusHub`.

    Use it as an async context manager: entering connects to the hub at
    `path` and waits (up to `connect_timeout_s`, then `BusError`) for its table
    of the other processes' subscriptions; leaving ends every subscription and
    disconnects. If the hub goes away first, every subscription ends at once
    (readers get `BusClosedError`), `publish` and `subscribe` raise
    `BusClosedError`, and `wait_closed()` returns: the process should shut down.
    Reusable, not reentrant.

    `name` names this process in the hub's logs.
    """

    def __init__(
        self,
        path: Path,
        *,
        name: str,
        # Limits
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        high_water_bytes: int = DEFAULT_HIGH_WATER_BYTES,
        # Timeouts
        connect_timeout_s: float = 5.0,
        close_timeout_s: float = 2.0,
    ) -> None:
        check_socket_path(path)
        self._path = path
        self._name = name
        self._max_frame_bytes = max_frame_bytes
        self._high_water_bytes = high_water_bytes
        self._connect_timeout_s = connect_timeout_s
        self._close_timeout_s = close_timeout_s
        self._local = InProcessBus()
        self._remote = RemoteInterests()
        self._mine: Counts[Interest] = Counts()
        self._hub: _HubConnection | None = None
        self._running = False
        self._closed = asyncio.Event()
        self.forwarded = 0
        """Events this process sent to others (what `publish` could not keep local)."""
        self.received = 0
        """Events other processes sent to this one."""

    @property
    def name(self) -> str:
        return self._name

    @property
    def connected(self) -> bool:
        """Whether the hub is reachable now (for health checks)."""
        return self._running

    def interested_peers(self, topic: str) -> int:
        """How many other processes subscribe to `topic`, as far as this one knows now."""
        return len(self._remote.interested(topic))

    async def wait_closed(self) -> None:
        """Return once this bus no longer reaches the hub: it was left, or the hub went away.

        Safe to cancel.
        """
        await self._closed.wait()

    async def __aenter__(self) -> LinkedBus:
        if self._hub is not None:
            raise BusError("a LinkedBus is reusable but not reentrant")
        self._local = InProcessBus()
        await self._local.__aenter__()
        self._remote = RemoteInterests()
        self._mine = Counts()
        self._closed = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, hub = await loop.create_unix_connection(
                    lambda: _HubConnection(
                        self._receive,
                        self._lose,
                        FrameReader(self._max_frame_bytes),
                        self._high_water_bytes,
                    ),
                    os.fspath(self._path),
                )
                self._hub = hub
                hub.write(encode_frame(Hello(self._name)))
                ready = await hub.ready
        except OSError as exc:  # TimeoutError included
            await self._disconnect()
            raise BusError(
                f"cannot reach the bus hub at {self._path} within {self._connect_timeout_s}s"
                f" ({str(exc) or type(exc).__name__}); the supervising process runs it"
            ) from exc
        except BaseException:
            await self._disconnect()
            raise
        if not ready:
            await self._disconnect()
            raise BusError(f"the bus hub at {self._path} closed the connection while greeting")
        self._running = True
        _log.info("bus_link.connected", link=self._name, path=str(self._path))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._disconnect()

    async def publish(self, topic: str, event: Event) -> None:
        """Deliver to this process's subscribers at once; queue one copy per other process.

        Only the processes whose subscriptions want the event get it, and a
        group's event goes to one member, in this process if it has one; an
        event nobody else wants is never encoded. Waits only while the hub
        reads more slowly than this process writes. Safe to cancel: the event
        is delivered and queued by then.
        """
        await self.publish_nowait(topic, event)

    def publish_nowait(self, topic: str, event: Event) -> asyncio.Future[None]:
        """As `publish`, returning at once; the future waits for the hub to read on."""
        hub = self._hub
        if hub is None or not self._running:
            raise BusClosedError(self._why_closed())
        served = self._local.deliver(topic, event)
        destinations = self._remote.route(topic, served)
        if destinations:
            hub.write(encode_publish(destinations, topic, encode(event)))
            self.forwarded += 1
            if hub.paused:
                return asyncio.ensure_future(hub.drain())
        written = asyncio.get_running_loop().create_future()
        written.set_result(None)
        return written

    @asynccontextmanager
    async def subscribe(
        self,
        topic_filter: str,
        *,
        group: str | None = None,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> AsyncIterator[Subscription]:
        """Subscribe for the `async with` block.

        Events published in this process reach it at once; other processes'
        once the hub has told them of it (a round trip through the hub, which
        entering does not wait for).
        """
        if self._hub is None or not self._running:
            raise BusClosedError(self._why_closed())
        if not topic_filter or group == "":
            raise ValueError("a topic filter is non-empty, and so is a group if given")
        interest = Interest(topic_filter, group)
        hub, mine = self._hub, self._mine  # this connection's, should the block outlive it
        async with self._local.subscribe(
            topic_filter, group=group, max_queued=max_queued
        ) as subscription:
            if mine.add(interest):
                self._send(hub, Subscribe(interest))
            try:
                yield subscription
            finally:
                if mine.remove(interest):
                    self._send(hub, Unsubscribe(interest))

    # The hub connection's callbacks

    def _receive(self, message: HubMessage) -> None:
        if isinstance(message, Deliver):
            self._deliver(message)
            return
        match message:
            case PeerSubscribed(peer=peer, interest=interest):
                self._remote.add(peer, interest)
            case PeerUnsubscribed(peer=peer, interest=interest):
                self._remote.remove(peer, interest)
            case PeerGone(peer=peer):
                self._remote.drop_peer(peer)

    def _deliver(self, message: Deliver) -> None:
        try:
            event = decode(message.payload)
        except EventDecodeError as exc:
            _log.warning("bus_link.invalid_event", link=self._name, error=str(exc))
            return
        self.received += 1
        served = self._local.deliver(message.topic, event, only=message.groups)
        if len(served) < len(message.groups):
            # Its member here left while the event was on its way: the event is dropped
            # (at most once), as the module's docstring says.
            _log.debug("bus_link.group_gone", link=self._name, topic=message.topic)

    def _lose(self, exc: Exception | None) -> None:
        """The connection ended: by our leaving, or the hub's going."""
        if self._running:
            _log.warning(
                "bus_link.hub_lost",
                link=self._name,
                error=str(exc) if exc else "the hub closed the connection",
            )
        self._running = False
        self._local.close()
        self._closed.set()

    # Helpers

    def _send(self, hub: _HubConnection, message: Subscribe | Unsubscribe) -> None:
        if hub is self._hub and self._running:
            hub.write(encode_frame(message))

    def _why_closed(self) -> str:
        if self._closed.is_set() and self._hub is not None:
            return f"the bus hub at {self._path} went away; this process should shut down"
        return "the linked bus is not running; use it inside `async with`"

    async def _disconnect(self) -> None:
        self._running = False
        self._local.close()
        hub, self._hub = self._hub, None
        if hub is not None:
            hub.outbox.flush()  # what was published before leaving still goes
            hub.transport.close()
            try:
                async with asyncio.timeout(self._close_timeout_s):
                    await hub.lost.wait()
            except TimeoutError:
                hub.transport.abort()
        self._closed.set()


class _HubConnection(asyncio.Protocol):
    """The socket to the hub: frames in, frames out, flow control."""

    def __init__(
        self,
        receive: Callable[[HubMessage], None],
        lose: Callable[[Exception | None], None],
        reader: FrameReader,
        high_water_bytes: int,
    ) -> None:
        self._receive = receive
        self._lose = lose
        self._reader = reader
        self._high_water_bytes = high_water_bytes
        self.transport: asyncio.Transport
        self.outbox: Outbox
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.lost = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    @property
    def paused(self) -> bool:
        return not self._writable.is_set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=self._high_water_bytes)
        self.outbox = Outbox(self.transport, flush_bytes=self._high_water_bytes // 4)

    def data_received(self, data: bytes) -> None:
        try:
            bodies = self._reader.feed(data)
        except EventDecodeError as exc:
            _log.error("bus_link.invalid_stream", error=str(exc))
            self.transport.abort()
            return
        for body in bodies:
            try:
                message = parse_from_hub(body)
            except EventDecodeError as exc:
                _log.warning("bus_link.invalid_frame", error=str(exc))
                continue
            match message:
                case Welcome(version=version) if version != PROTOCOL_VERSION:
                    _log.error("bus_link.protocol_version", version=version)
                    self.transport.abort()
                    return
                case Ready():
                    if not self.ready.done():
                        self.ready.set_result(True)
                case _:
                    self._receive(message)

    def write(self, frame: bytes) -> None:
        self.outbox.write(frame)

    async def drain(self) -> None:
        """Wait until the hub has read enough; `BusClosedError` if it went away. Safe to cancel."""
        await self._writable.wait()
        if self.lost.is_set():
            raise BusClosedError("the bus hub went away")

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()
        self._writable.set()
        if not self.ready.done():
            self.ready.set_result(False)
        self._lose(exc)
