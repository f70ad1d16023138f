"""An ASGI app served by uvicorn inside the caller's event loop, for an `async with` block.

uvicorn runs HTTP/1.1 with httptools where it is installed (h11 otherwise) and
WebSocket with the websockets library's sans-I/O protocol (closing a client that
reads nothing without waiting on it). The socket is bound here (`bind_listener`),
so a port in use is an `OSError` for the caller and port 0 tells the caller which
port it got; several serving processes each get a socket of their own on one
port, bound by their supervisor. Signals stay the caller's: uvicorn installs none.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = [
    "HttpServerSettings",
    "Listening",
    "SendStalled",
    "balances_reuse_port",
    "bind_listener",
    "serve_http",
]

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpServerSettings:
    """uvicorn's settings that Heartline sets; every timeout and limit finite."""

    # Limits
    ws_max_bytes: int = 1024 * 1024
    """A larger WebSocket frame closes the connection with 1009."""
    ws_send_timeout_s: float = 10.0
    """How long a WebSocket message may wait for room before `SendStalled`."""
    ws_compression: bool = False
    """permessage-deflate for clients that offer it: fewer bytes, more CPU and memory."""
    backlog: int = 2048
    # Timeouts
    ws_ping_interval_s: float = 20.0
    ws_ping_timeout_s: float = 20.0
    keep_alive_s: float = 5.0
    """Seconds an idle HTTP keep-alive connection stays open."""
    shutdown_s: float = 10.0
    """Seconds requests still running at shutdown get before they are cancelled."""


@dataclass(frozen=True, slots=True)
class Listening:
    host: str
    port: int


class SendStalled(Exception):
    """A WebSocket message found no room for `ws_send_timeout_s`: the client reads nothing."""


class _WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, without waiting forever on a stalled client.

    uvicorn waits for room in the write buffer before every send, the close frame's
    too. Here a message waits at most `send_timeout_s` (then `SendStalled`), and a
    close sent while the buffer is full goes behind what is buffered at once, the
    app hears the disconnect, and the connection is aborted if the client has not
    answered the close within uvicorn's close timeout. A send with room, the usual
    case, takes no timer.
    """

    send_timeout_s: float = 10.0

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.accept":
            await super().send(message)
            # uvicorn keeps the handshake's request and response, headers and all, for
            # the connection's life; nothing reads them again (about 3 KiB a session).
            del self.request, self.response
            return
        if message["type"] == "websocket.send" and not self.writable.is_set():
            try:
                async with asyncio.timeout(self.send_timeout_s):
                    await self.writable.wait()
            except TimeoutError:
                raise SendStalled from None
        if message["type"] != "websocket.close" or self.writable.is_set():
            await super().send(message)
            return
        if self.close_sent or self.disconnected or self.transport.is_closing():
            return
        code: int = message.get("code", 1000)
        reason: str = message.get("reason") or ""
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:  # so that the client's close frame, if it comes, is read
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: the embedding process owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_listener(
    host: str, port: int, backlog: int = 2048, *, reuse_port: bool = False
) -> socket.socket:
    """A non-blocking socket listening on host:port (0: any free port); `OSError` if taken.

    With `reuse_port` (where `balances_reuse_port`), other sockets may listen on the same
    port with it, and the kernel spreads new connections evenly over them.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def balances_reuse_port() -> bool:
    """Whether sockets sharing a port with SO_REUSEPORT share its connections evenly (Linux);
    elsewhere the option exists with other meanings, or not at all."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _config(app: ASGIApp, settings: HttpServerSettings) -> uvicorn.Config:
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return uvicorn.Config(
        app,
        http=http,
        ws=type(
            "WebSocketProtocol",
            (_WebSocketProtocol,),
            {"send_timeout_s": settings.ws_send_timeout_s},
        ),
        lifespan="off",
        loop="none",
        log_config=None,
        access_log=False,
        server_header=False,
        headers=[("server", "heartline")],
        ws_max_size=settings.ws_max_bytes,
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_timeout_s,
        ws_per_message_deflate=settings.ws_compression,
        timeout_keep_alive=int(max(1, settings.keep_alive_s)),
        timeout_graceful_shutdown=int(max(1, settings.shutdown_s)),
        backlog=settings.backlog,
    )


@asynccontextmanager
async def serve_http(
    app: ASGIApp,
    host: str,
    port: int,
    settings: HttpServerSettings | None = None,
    *,
    listener: socket.socket | None = None,
) -> AsyncIterator[Listening]:
    """Serve `app` on host:port (0: any free port), or on `listener`, until the block ends.

    `listener` is a socket already listening (`bind_listener`), which other
    processes may be accepting on too. Leaving the block stops accepting, lets
    running requests finish for up to `shutdown_s`, then cancels them. Raises
    `OSError` if the address cannot be bound.
    """
    settings = settings or HttpServerSettings()
    sock = listener if listener is not None else bind_listener(host, port, settings.backlog)
    bound_host, bound_port = sock.getsockname()[:2]
    server = _Server(_config(app, settings))
    async with asyncio.TaskGroup() as tasks:
        serving = tasks.create_task(server.serve(sockets=[sock]), name="heartline-http")
        try:
            while not server.started:
                if serving.done():
                    serving.result()  # raises what stopped it
                    raise RuntimeError("the HTTP server stopped while starting")
                await asyncio.sleep(0.005)
            yield Listening(str(bound_host), int(bound_port))
        finally:
            server.should_exit = True
    sock.close()
