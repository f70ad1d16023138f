"""Health, readiness and metrics over HTTP, for the gateway's port and a worker's own.

* ``/healthz``: 200 "ok" while the process serves;
* ``/readyz``: 200 when the `ready` callable says so, else 503;
* ``/metrics``: the Prometheus text exposition.
"""

from __future__ import annotations

import http
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

import structlog
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from agent.metrics import Metrics

__all__ = ["METRICS_CONTENT_TYPE", "probe_response", "serve_probes"]

METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_log = structlog.get_logger(__name__)


def probe_response(
    connection: ServerConnection, path: str, *, metrics: Metrics, ready: Callable[[], bool]
) -> Response | None:
    """The response for a probe path, or None for any other path."""
    if path == "/healthz":
        return connection.respond(http.HTTPStatus.OK, "ok\n")
    if path == "/readyz":
        if _is_ready(ready):
            return connection.respond(http.HTTPStatus.OK, "ready\n")
        return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "not ready\n")
    if path == "/metrics":
        response = connection.respond(http.HTTPStatus.OK, metrics.render().decode("utf-8"))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = METRICS_CONTENT_TYPE
        return response
    return None


def _is_ready(ready: Callable[[], bool]) -> bool:
    try:
        return ready()
    except Exception:
        _log.exception("readiness check failed")
        return False


@asynccontextmanager
async def serve_probes(
    host: str, port: int, *, metrics: Metrics, ready: Callable[[], bool]
) -> AsyncIterator[int]:
    """Answer the probe paths on `host:port` (404 elsewhere); yields the bound port."""

    def answer(connection: ServerConnection, request: Request) -> Response:
        path = request.path.partition("?")[0]
        found = probe_response(connection, path, metrics=metrics, ready=ready)
        return found or connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")

    async def refuse(connection: ServerConnection) -> None:
        await connection.close()

    async with serve(refuse, host, port, process_request=answer) as server:
        bound = int(server.sockets[0].getsockname()[1])
        _log.info("probes listening", host=host, port=bound)
        yield bound
