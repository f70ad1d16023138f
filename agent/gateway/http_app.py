"""The gateway's ASGI app: every route of the one port, and how errors look on it.

Routes come from their own modules (`/ws`, the probes, and the HTTP APIs and
pages when the gateway has them); this module puts them together with the
OpenAPI schema (`/openapi.json`), its docs page (`/docs`), bounded bodies and
JSON errors in the OpenAI shape for every path, unknown paths and wrong
methods included.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from agent import __version__
from agent.errors import ConfigError
from agent.gateway.body_limit import BodyLimit
from agent.gateway.http_errors import install_error_handlers

__all__ = ["build_app", "with_websocket"]

_DESCRIPTION = """\
Heartline's HTTP surface. One port carries the WebSocket protocol (`/ws`,
docs/protocol.md), an OpenAI-compatible chat API (`/v1/chat/completions`,
`/v1/models`), batch emotion analysis (`/v1/emotion`), the web chat (`/`), the
operator console (`/operator`) and its API, and the health and metrics probes.

Authenticate with `Authorization: Bearer <credential>`: a user token from
`heartline token --user NAME`, an API key from `HEARTLINE_API_KEYS` (OpenAI API,
emotion API), or an operator token from `heartline token --operator NAME`.
Errors are JSON in the OpenAI shape: `{"error": {"message", "type", "param", "code"}}`.
"""


def build_app(routers: Sequence[APIRouter], *, max_body_bytes: int) -> FastAPI:
    app = FastAPI(
        title="Heartline",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    for router in routers:
        app.include_router(router)
    _add_docs_page(app)
    return app


def with_websocket(app: ASGIApp, path: str, endpoint: ASGIApp) -> ASGIApp:
    """`app`, with WebSocket connections to `path` handed to `endpoint` directly.

    Through FastAPI, every session would keep its middleware and routing frames for
    its whole life, about 8 KiB a session, and every frame it sends would pass their
    wrappers (docs/benchmarks.md, idle sessions).
    """

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == path:
            await endpoint(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch


def _swagger_files() -> Path:
    """Swagger UI's files, from the swagger-ui-py package (found without importing it)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("swagger-ui-py is not installed; reinstall heartline")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def _add_docs_page(app: FastAPI) -> None:
    """`/docs`: Swagger UI on `/openapi.json`, its scripts served from here, not a CDN."""
    app.mount("/docs/assets", StaticFiles(directory=_swagger_files()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Heartline API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )
