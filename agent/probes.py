"""Health, readiness and metrics over HTTP, for the gateway's port and a worker's own.

* ``/healthz``: 200 "ok" while the process serves;
* ``/readyz``: 200 when the `ready` callable says so, else 503;
* ``/metrics``: the Prometheus text exposition.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

import structlog
from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse, Response

from agent.gateway.http_errors import install_error_handlers
from agent.gateway.http_server import serve_http
from agent.metrics import Metrics

__all__ = ["METRICS_CONTENT_TYPE", "probe_router", "serve_probes"]

METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_log = structlog.get_logger(__name__)


def probe_router(*, metrics: Metrics, ready: Callable[[], bool]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", response_class=PlainTextResponse, summary="Liveness")
    async def healthz() -> str:
        """200 while the process serves."""
        return "ok\n"

    @router.get(
        "/readyz",
        response_class=PlainTextResponse,
        summary="Readiness",
        responses={503: {"description": "not ready"}},
    )
    async def readyz() -> PlainTextResponse:
        """200 when the process can take traffic, else 503."""
        if _is_ready(ready):
            return PlainTextResponse("ready\n")
        return PlainTextResponse("not ready\n", status_code=503)

    @router.get("/metrics", response_class=Response, summary="Prometheus metrics")
    async def prometheus() -> Response:
        """The Prometheus text exposition of this process's metrics."""
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    # HEAD answers like GET, kept out of the schema (one operation per path there).
    router.add_api_route(
        "/healthz",
        healthz,
        methods=["HEAD"],
        response_class=PlainTextResponse,
        include_in_schema=False,
    )
    router.add_api_route("/readyz", readyz, methods=["HEAD"], include_in_schema=False)
    return router


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
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    app.include_router(probe_router(metrics=metrics, ready=ready))
    async with serve_http(app, host, port) as listening:
        _log.info("probes listening", host=host, port=listening.port)
        yield listening.port
