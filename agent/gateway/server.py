"""The gateway server: WebSocket sessions on /ws and HTTP probes on the same port.

HTTP endpoints (GET only, answered during the opening handshake):

* ``/healthz``: 200 "ok" while the process serves;
* ``/readyz``: 200 when the `ready` callable says so, else 503;
* ``/metrics``: the Prometheus text exposition;
* anything else but ``/ws``: 404.

A token in the handshake (``Authorization: Bearer`` or ``?token=``) is verified
before the upgrade: an invalid one gets HTTP 401 and no WebSocket.
"""

from __future__ import annotations

import http
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qs, urlsplit

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from agent.bus.base import EventBus
from agent.errors import AuthError, ConfigError
from agent.gateway.auth import TokenAuthority
from agent.gateway.connection import serve_connection
from agent.gateway.limits import ConnectionLimits
from agent.metrics import Metrics
from agent.probes import probe_response

__all__ = ["WS_PATH", "Gateway", "GatewaySettings", "serve_gateway"]

WS_PATH: Final = "/ws"

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySettings:
    """Where the gateway listens and how long it waits; port 0 picks a free port."""

    host: str = "127.0.0.1"
    port: int = 8765
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    # Timeouts
    open_timeout_s: float = 10.0
    """Seconds a client has to complete the opening handshake."""
    ping_interval_s: float = 20.0
    """Seconds between keepalive pings."""
    ping_timeout_s: float = 20.0
    """Seconds to wait for a pong before the connection is considered dead."""
    close_timeout_s: float = 10.0
    """Seconds to wait for the closing handshake."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"gateway port must be 0-65535 (0 = any free port), got {self.port}")
        for name in ("open_timeout_s", "ping_interval_s", "ping_timeout_s", "close_timeout_s"):
            value = getattr(self, name)
            if not value > 0:
                raise ConfigError(f"gateway setting {name} must be positive, got {value!r}")


@dataclass(frozen=True, slots=True)
class Gateway:
    """A running gateway, as `serve_gateway` yields it."""

    host: str
    port: int
    settings: GatewaySettings
    _server: Server = field(repr=False)

    @property
    def url(self) -> str:
        """The WebSocket URL clients connect to."""
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    @property
    def connections(self) -> int:
        """Open WebSocket connections right now."""
        return len(self._server.connections)


@asynccontextmanager
async def serve_gateway(
    bus: EventBus,
    *,
    authority: TokenAuthority,
    metrics: Metrics,
    settings: GatewaySettings | None = None,
    ready: Callable[[], bool] = lambda: True,
) -> AsyncIterator[Gateway]:
    """Listen for clients for the duration of the `async with` block.

    Leaving the block stops accepting connections, closes the open ones with
    1001 (going away) and waits for their sessions to end.
    """
    settings = settings or GatewaySettings()
    routes = _Routes(bus=bus, authority=authority, metrics=metrics, settings=settings, ready=ready)
    limits = settings.limits
    server = await serve(
        routes.handle,
        settings.host,
        settings.port,
        process_request=routes.process_request,
        server_header="heartline",
        open_timeout=settings.open_timeout_s,
        ping_interval=settings.ping_interval_s,
        ping_timeout=settings.ping_timeout_s,
        close_timeout=settings.close_timeout_s,
        max_size=limits.max_frame_bytes,
    )
    try:
        host, port = server.sockets[0].getsockname()[:2]
        _log.info("gateway listening", host=host, port=port)
        yield Gateway(host=str(host), port=int(port), settings=settings, _server=server)
    finally:
        server.close(code=CloseCode.GOING_AWAY, reason="server shutting down")
        await server.wait_closed()
        _log.info("gateway stopped")


class _Routes:
    def __init__(
        self,
        *,
        bus: EventBus,
        authority: TokenAuthority,
        metrics: Metrics,
        settings: GatewaySettings,
        ready: Callable[[], bool],
    ) -> None:
        self._bus = bus
        self._authority = authority
        self._metrics = metrics
        self._settings = settings
        self._ready = ready

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer HTTP endpoints; verify a handshake token; None lets /ws upgrade."""
        url = urlsplit(request.path)
        probe = probe_response(connection, url.path, metrics=self._metrics, ready=self._ready)
        if probe is not None:
            return probe
        if url.path != WS_PATH:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        try:
            token = _handshake_token(request.headers, url.query)
            if token is not None:
                connection.username = self._authority.verify(token)
        except AuthError as exc:
            self._metrics.errors.labels("unauthorized").inc()
            _log.info("handshake refused", reason=str(exc))
            response = connection.respond(http.HTTPStatus.UNAUTHORIZED, f"unauthorized: {exc}\n")
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return response
        return None

    async def handle(self, connection: ServerConnection) -> None:
        user_id: str | None = getattr(connection, "username", None)
        self._metrics.connections.inc()
        try:
            await serve_connection(
                connection,
                bus=self._bus,
                authority=self._authority,
                metrics=self._metrics,
                limits=self._settings.limits,
                user_id=user_id,
            )
        finally:
            self._metrics.connections.dec()


def _handshake_token(headers: Headers, query: str) -> str | None:
    """The token of the `Authorization: Bearer` header, else of `?token=`, else None.

    Raises `AuthError` for a header or parameter that is present but unusable.
    """
    authorization = headers.get_all("Authorization")
    if len(authorization) > 1:
        raise AuthError("more than one Authorization header")
    if authorization:
        scheme, _, token = authorization[0].strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("use 'Authorization: Bearer <token>'")
        return token.strip()
    tokens = parse_qs(query, keep_blank_values=True).get("token", [])
    if len(tokens) > 1:
        raise AuthError("more than one token parameter")
    if tokens:
        if not tokens[0]:
            raise AuthError("token is empty")
        return tokens[0]
    return None
