"""The gateway server: one port for `/ws`, the HTTP APIs, the pages and the probes.

`serve_gateway` assembles the routes (`agent.gateway.http_app`) and serves
them with uvicorn (`agent.gateway.http_server`) for the duration of an
`async with` block. A token in the WebSocket handshake (`Authorization:
Bearer` or `?token=`) is verified before the upgrade: an invalid one gets
HTTP 401 and no WebSocket.
"""

from __future__ import annotations

import math
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import structlog
from fastapi import APIRouter

from agent.bus.base import EventBus
from agent.errors import ConfigError
from agent.gateway.admission import Admission, AdmissionLimits
from agent.gateway.api_keys import ApiKeys
from agent.gateway.auth import TokenAuthority
from agent.gateway.chat_sessions import ChatSessions
from agent.gateway.credentials import Credentials
from agent.gateway.emotion_api import EmotionService, emotion_router
from agent.gateway.emotion_client import emotion_client
from agent.gateway.http_app import build_app, with_websocket
from agent.gateway.http_server import HttpServerSettings, serve_http
from agent.gateway.limits import ConnectionLimits
from agent.gateway.live import LiveConnections
from agent.gateway.lookups import session_lookups
from agent.gateway.openai_api import ChatService, openai_router
from agent.gateway.operator_api import HistoryReader, OperatorService, operator_router
from agent.gateway.pages import pages_router
from agent.gateway.relay import CLOSE_GOING_AWAY, Ending
from agent.gateway.roster import Availability
from agent.gateway.watch import watch_sessions
from agent.gateway.ws_route import WS_PATH, WebSocketService, ws_router, ws_session
from agent.metrics import Metrics
from agent.probes import probe_router

__all__ = ["WS_PATH", "Gateway", "GatewaySettings", "serve_gateway"]

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySettings:
    """Where the gateway listens and how long it waits; port 0 picks a free port."""

    host: str = "127.0.0.1"
    port: int = 8765
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    admission: AdmissionLimits = field(default_factory=AdmissionLimits)
    """How many turns this process takes on before it refuses new ones (`overloaded`)."""
    default_tenant: str = "default"
    """The tenant of users whose token names none."""
    # Limits
    max_body_bytes: int = 1024 * 1024
    """The largest HTTP request body read; larger ones get 413."""
    max_chat_sessions: int = 10_000
    """HTTP API users' conversations kept open at once."""
    # Timeouts
    chat_idle_s: float = 1800.0
    """Seconds an HTTP API user's conversation stays open between requests."""
    emotion_timeout_s: float = 15.0
    """Seconds `/v1/emotion` waits for the workers' readings."""
    ping_interval_s: float = 20.0
    """Seconds between keepalive pings."""
    ping_timeout_s: float = 20.0
    """Seconds to wait for a pong before the connection is considered dead."""
    close_timeout_s: float = 10.0
    """Seconds sessions and requests get to finish when the gateway stops."""
    ws_compression: bool = False
    """Whether WebSocket clients may negotiate permessage-deflate."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"gateway port must be 0-65535 (0 = any free port), got {self.port}")
        positive = (
            "ping_interval_s",
            "ping_timeout_s",
            "close_timeout_s",
            "max_body_bytes",
            "max_chat_sessions",
            "chat_idle_s",
            "emotion_timeout_s",
        )
        for name in positive:
            value = getattr(self, name)
            if not value > 0:
                raise ConfigError(f"gateway setting {name} must be positive, got {value!r}")


@dataclass(frozen=True, slots=True)
class Gateway:
    """A running gateway, as `serve_gateway` yields it."""

    host: str
    port: int
    settings: GatewaySettings
    _live: LiveConnections = field(repr=False)

    @property
    def url(self) -> str:
        """The WebSocket URL clients connect to."""
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    @property
    def http_url(self) -> str:
        """The server's root URL: pages at `/`, the OpenAI-compatible API under `/v1`."""
        return f"http://{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        """Open WebSocket sessions right now."""
        return len(self._live)


@asynccontextmanager
async def serve_gateway(
    bus: EventBus,
    *,
    authority: TokenAuthority,
    metrics: Metrics,
    settings: GatewaySettings | None = None,
    ready: Callable[[], bool] = lambda: True,
    workers: Callable[[], Availability] = lambda: Availability.AVAILABLE,
    route_changed: Callable[[], float] = lambda: -math.inf,
    api_keys: ApiKeys | None = None,
    history: HistoryReader | None = None,
    listener: socket.socket | None = None,
) -> AsyncIterator[Gateway]:
    """Listen for clients for the duration of the `async with` block.

    `ready` answers `/readyz`; `workers` says whether a worker is there to
    answer turns (none: turns are refused at once with `unavailable`), and
    `route_changed` when (wall clock) a worker last came or went or the bus
    connection came back (turns in flight then are published again);
    `api_keys` are the HTTP APIs' keys; `history` reads a user's emotional
    history for the operator console (None: this gateway has no database);
    `listener` is a socket already listening, shared with other serving
    processes (None: bind `settings.host` and `settings.port`).
    Leaving the block stops accepting, closes the open sessions with 1001
    (going away) and waits for them to end.
    """
    settings = settings or GatewaySettings()
    admission = Admission(settings.admission)
    async with AsyncExitStack() as stack:
        chat = await stack.enter_async_context(
            ChatSessions(
                bus,
                limits=settings.limits,
                metrics=metrics,
                workers=workers,
                admission=admission,
                route_changed=route_changed,
                idle_s=settings.chat_idle_s,
                max_sessions=settings.max_chat_sessions,
            )
        )
        reader = await stack.enter_async_context(
            emotion_client(bus, workers=workers, timeout_s=settings.emotion_timeout_s)
        )
        # A session nothing was heard of for longer than any session may idle has gone
        # with its gateway.
        stale_after = max(settings.limits.idle_timeout_s, settings.chat_idle_s) + 60.0
        watch = await stack.enter_async_context(watch_sessions(bus, stale_after=stale_after))
        credentials = Credentials(
            authority, api_keys or ApiKeys.none(), default_tenant=settings.default_tenant
        )
        operators = OperatorService(
            credentials=credentials,
            authority=authority,
            bus=bus,
            watch=watch,
            history=history,
            default_tenant=settings.default_tenant,
        )
        routers = [
            openai_router(ChatService(credentials=credentials, sessions=chat, workers=workers)),
            emotion_router(EmotionService(credentials=credentials, reader=reader)),
            operator_router(operators),
            pages_router(),
        ]
        served = _serve(
            bus,
            authority,
            metrics,
            settings,
            ready,
            workers,
            route_changed,
            admission,
            routers,
            listener,
        )
        async with served as gateway:
            yield gateway


@asynccontextmanager
async def _serve(
    bus: EventBus,
    authority: TokenAuthority,
    metrics: Metrics,
    settings: GatewaySettings,
    ready: Callable[[], bool],
    workers: Callable[[], Availability],
    route_changed: Callable[[], float],
    admission: Admission,
    routers: list[APIRouter],
    listener: socket.socket | None,
) -> AsyncIterator[Gateway]:
    live = LiveConnections()
    async with session_lookups(bus, workers=workers) as lookups:
        service = WebSocketService(
            bus=bus,
            authority=authority,
            metrics=metrics,
            limits=settings.limits,
            default_tenant=settings.default_tenant,
            workers=workers,
            admission=admission,
            route_changed=route_changed,
            live=live,
            lookups=lookups,
        )
        app = with_websocket(
            build_app(
                [ws_router(), probe_router(metrics=metrics, ready=ready), *routers],
                max_body_bytes=settings.max_body_bytes,
            ),
            WS_PATH,
            ws_session(service),
        )
        server_settings = HttpServerSettings(
            ws_max_bytes=settings.limits.max_frame_bytes,
            ws_send_timeout_s=settings.limits.send_timeout_s,
            ws_ping_interval_s=settings.ping_interval_s,
            ws_ping_timeout_s=settings.ping_timeout_s,
            shutdown_s=settings.close_timeout_s,
            ws_compression=settings.ws_compression,
        )
        async with serve_http(
            app, settings.host, settings.port, server_settings, listener=listener
        ) as listening:
            _log.info("gateway listening", host=listening.host, port=listening.port)
            try:
                yield Gateway(listening.host, listening.port, settings, live)
            finally:
                ending = Ending(CLOSE_GOING_AWAY, "server shutting down")
                await live.end_all(ending, grace_s=settings.close_timeout_s)
    _log.info("gateway stopped")
