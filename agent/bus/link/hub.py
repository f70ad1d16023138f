"""The bus hub: the supervising process's Unix socket that the serving processes link to.

A thin asyncio layer over `HubCore`: one `asyncio.Protocol` per link, frames
parsed as they arrive, every write buffered and the frames of one loop turn
sent together. The hub never waits on a link: a
link whose unread frames pass `max_buffer_bytes` is disconnected (and, its
process losing the bus, shuts down and is started again by the supervisor).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from types import TracebackType
from typing import Final, cast

import structlog

from agent.bus.link.outbox import Outbox
from agent.bus.link.relay import HubCore, ProtocolError, Send
from agent.bus.link.wire import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameReader,
    Hello,
    check_socket_path,
    encode_frame,
    parse_from_link,
)
from agent.errors import BusError, EventDecodeError

__all__ = ["DEFAULT_MAX_BUFFER_BYTES", "BusHub"]

_log = structlog.get_logger(__name__)

# Room for two of the largest frames; a link this far behind is not reading.
DEFAULT_MAX_BUFFER_BYTES: Final = 2 * DEFAULT_MAX_FRAME_BYTES


class BusHub:
    """Routes events between the `LinkedBus`es of one machine's serving processes.

    Use it as an async context manager: entering listens on a Unix stream
    socket at `path` (which must not be taken; pick it in a fresh private
    directory), leaving disconnects every link, so their subscriptions end, and
    removes the socket file. Reusable, not reentrant.
    """

    def __init__(
        self,
        path: Path,
        *,
        # Limits
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        # Timeouts
        close_timeout_s: float = 5.0,
    ) -> None:
        check_socket_path(path)
        self._path = path
        self._max_frame_bytes = max_frame_bytes
        self._max_buffer_bytes = max_buffer_bytes
        self._close_timeout_s = close_timeout_s
        self._core = HubCore()
        self._links: dict[int, _Link] = {}
        self._server: asyncio.AbstractServer | None = None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def links(self) -> tuple[str, ...]:
        """The names of the links connected now (past their greeting)."""
        return tuple(self._core.joined.values())

    async def __aenter__(self) -> BusHub:
        if self._server is not None:
            raise BusError("a BusHub is reusable but not reentrant")
        self._core = HubCore()
        self._links = {}
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_unix_server(
                lambda: _Link(self, FrameReader(self._max_frame_bytes)), path=os.fspath(self._path)
            )
            os.chmod(self._path, 0o600)
        except OSError as exc:
            raise BusError(f"the bus hub cannot listen at {self._path}: {exc}") from exc
        _log.info("bus_hub.listening", path=str(self._path))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        links = list(self._links.values())
        for link in links:
            link.outbox.flush()
            link.transport.close()  # what is buffered goes out first
        if links:
            closing = [asyncio.ensure_future(link.closed.wait()) for link in links]
            _, late = await asyncio.wait(closing, timeout=self._close_timeout_s)
            for waiter in late:
                waiter.cancel()
            for link in links:
                if not link.closed.is_set():
                    link.transport.abort()
        await server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()
        _log.info("bus_hub.closed", path=str(self._path))

    # Called by the links

    def _connect(self, link: _Link) -> int:
        peer = self._core.connect()
        self._links[peer] = link
        return peer

    def _receive(self, link: _Link, body: bytes) -> None:
        try:
            message = parse_from_link(body)
        except EventDecodeError as exc:
            _log.warning("bus_hub.invalid_frame", link=link.name, error=str(exc))
            return
        try:
            sends = self._core.receive(link.peer, message)
        except ProtocolError as exc:
            _log.warning("bus_hub.protocol_error", link=link.name, error=str(exc))
            link.drop()
            return
        if isinstance(message, Hello):
            link.name = message.name
            _log.info("bus_hub.link_joined", link=link.name, peer=link.peer)
        self._send(sends)

    def _disconnect(self, link: _Link) -> None:
        if self._links.get(link.peer) is link:
            del self._links[link.peer]
        self._send(self._core.disconnect(link.peer))
        _log.info("bus_hub.link_left", link=link.name, peer=link.peer)

    def _send(self, sends: list[Send]) -> None:
        for send in sends:
            frame = encode_frame(send.message)
            for peer in send.peers:
                link = self._links.get(peer)
                if link is not None:
                    link.write(frame, self._max_buffer_bytes)


class _Link(asyncio.Protocol):
    """One link's connection to the hub."""

    def __init__(self, hub: BusHub, reader: FrameReader) -> None:
        self._hub = hub
        self._reader = reader
        self.transport: asyncio.Transport
        self.outbox: Outbox
        self.peer = 0
        self.name = "?"
        self.closed = asyncio.Event()
        self._dropped = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.outbox = Outbox(self.transport)
        self.peer = self._hub._connect(self)
        self.name = f"#{self.peer}"

    def data_received(self, data: bytes) -> None:
        try:
            bodies = self._reader.feed(data)
        except EventDecodeError as exc:
            _log.warning("bus_hub.invalid_stream", link=self.name, error=str(exc))
            self.drop()
            return
        for body in bodies:
            if self._dropped:
                return
            self._hub._receive(self, body)

    def write(self, frame: bytes, max_buffer_bytes: int) -> None:
        if self._dropped:
            return
        self.outbox.write(frame)
        buffered = self.outbox.buffered
        if buffered > max_buffer_bytes:
            _log.warning(
                "bus_hub.link_too_slow",
                link=self.name,
                buffered_bytes=buffered,
                max_buffer_bytes=max_buffer_bytes,
            )
            self.drop()

    def drop(self) -> None:
        """Disconnect now, dropping what is buffered."""
        if not self._dropped:
            self._dropped = True
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._dropped = True
        self._hub._disconnect(self)
        self.closed.set()
