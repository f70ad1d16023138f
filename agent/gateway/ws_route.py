"""The `/ws` route: verify a handshake token, then hand the connection to its session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

import structlog
from fastapi import APIRouter, WebSocket
from fastapi.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from agent.bus.base import EventBus
from agent.errors import AuthError
from agent.gateway.admission import Admission
from agent.gateway.auth import Principal, Role, TokenAuthority
from agent.gateway.connection import serve_connection
from agent.gateway.http_errors import ApiError
from agent.gateway.limits import ConnectionLimits
from agent.gateway.live import LiveConnections
from agent.gateway.lookups import SessionLookups
from agent.gateway.protocol import ErrorCode
from agent.gateway.roster import Availability
from agent.metrics import Metrics

__all__ = ["WS_PATH", "WebSocketService", "ws_router", "ws_session"]

WS_PATH = "/ws"

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSocketService:
    """What the route needs to serve sessions."""

    bus: EventBus
    authority: TokenAuthority
    metrics: Metrics
    limits: ConnectionLimits
    default_tenant: str
    workers: Callable[[], Availability]
    admission: Admission
    route_changed: Callable[[], float]
    live: LiveConnections
    lookups: SessionLookups


def ws_session(service: WebSocketService) -> ASGIApp:
    """The `/ws` endpoint as a plain ASGI app, to be mounted in front of the HTTP app
    (`agent.gateway.http_app.with_websocket`)."""

    async def session(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        try:
            principal = _handshake_principal(
                service.authority,
                websocket.headers.getlist("authorization"),
                websocket.url.query,
            )
        except AuthError as exc:
            service.metrics.errors.labels(ErrorCode.UNAUTHORIZED.value).inc()
            _log.info("handshake refused", reason=str(exc))
            refusal = PlainTextResponse(
                f"unauthorized: {exc}\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
            await websocket.send_denial_response(refusal)
            return
        await websocket.accept()
        service.metrics.connections.inc()
        try:
            with service.live.serving() as ends:
                await serve_connection(
                    websocket,
                    bus=service.bus,
                    authority=service.authority,
                    metrics=service.metrics,
                    limits=service.limits,
                    default_tenant=service.default_tenant,
                    workers=service.workers,
                    admission=service.admission,
                    route_changed=service.route_changed,
                    lookups=service.lookups,
                    ends=ends,
                    principal=principal,
                    resume=_resumed_session(websocket.url.query),
                )
        finally:
            service.metrics.connections.dec()

    return session


def ws_router() -> APIRouter:
    """`GET /ws` without an upgrade: say what the endpoint is."""
    router = APIRouter()

    @router.get(WS_PATH, include_in_schema=False)
    async def not_upgraded() -> None:
        raise ApiError(
            426,
            "this is the WebSocket endpoint: connect with a WebSocket client (docs/protocol.md)",
            code="upgrade_required",
            headers={"Upgrade": "websocket", "Connection": "Upgrade"},
        )

    return router


def _handshake_principal(
    authority: TokenAuthority, authorization: list[str], query: str
) -> Principal | None:
    """Whom the `Authorization: Bearer` header names, else `?token=`, else None.

    Raises `AuthError` for a header or parameter that is present but unusable.
    """
    token = _handshake_token(authorization, query)
    if token is None:
        return None
    principal = authority.verify(token)
    if principal.role is not Role.USER:
        raise AuthError("an operator token does not open a user's session")
    return principal


def _handshake_token(authorization: list[str], query: str) -> str | None:
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


def _resumed_session(query: str) -> str | None:
    """The session the client asks to resume (`?resume=`), if it asks."""
    sessions = parse_qs(query, keep_blank_values=True).get("resume")
    return None if sessions is None else sessions[0]
