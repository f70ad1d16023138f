"""The pages: the web chat (`/`), the operator console (`/operator`) and their files.

Plain HTML, CSS and ES modules from the package's `static/` folder, served by
the gateway itself: no build step, no CDN. The files are read once, when the
router is made, and answered from memory with an ETag; browsers revalidate
them on each load (`no-cache`), so an upgraded server never mixes old and new
modules. The pages carry a strict Content-Security-Policy: scripts, styles and
connections only from this origin, nothing inline. The static files may be
loaded from other origins (`Access-Control-Allow-Origin: *`): another site's page
can import `heartline.js`.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run
# time.

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from agent.gateway.http_errors import ApiError

__all__ = ["CONTENT_SECURITY_POLICY", "pages_router"]

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

# Every answer: the browser must not guess types, and a page's address (which may
# still hold `?token=` on first load) must not leak to other sites.
_COMMON: Final = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# The files may be imported by other sites' pages (heartline.js is a client module).
_STATIC: Final = {**_COMMON, "Access-Control-Allow-Origin": "*"}
_PAGE: Final = {
    **_COMMON,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
}

_PAGES: Final = {"/": "index.html", "/operator": "operator.html"}


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    media_type: str
    etag: str
    headers: dict[str, str]


def _load(name: str, data: bytes, headers: dict[str, str]) -> _File:
    suffix = name[name.rfind(".") :]
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    return _File(data, _TYPES[suffix], etag, {**headers, "ETag": etag})


def _static_files() -> dict[str, bytes]:
    folder = resources.files("agent.gateway") / "static"
    return {
        entry.name: entry.read_bytes()
        for entry in folder.iterdir()
        if entry.is_file() and entry.name[entry.name.rfind(".") :] in _TYPES
    }


def _answer(file: _File, request: Request) -> Response:
    """The file, or 304 when the browser's copy (`If-None-Match`) is this one."""
    tags = request.headers.get("if-none-match", "")
    if file.etag in (tag.strip().removeprefix("W/") for tag in tags.split(",")):
        return Response(status_code=304, headers=file.headers)
    return Response(file.body, media_type=file.media_type, headers=file.headers)


def pages_router() -> APIRouter:
    """`/`, `/operator` and `/static/<name>` for each file of the package's `static/`."""
    files = _static_files()
    statics = {name: _load(name, data, _STATIC) for name, data in files.items()}
    pages = {path: _load(name, files[name], _PAGE) for path, name in _PAGES.items()}
    router = APIRouter(include_in_schema=False)

    @router.api_route("/", methods=["GET", "HEAD"])
    async def chat_page(request: Request) -> Response:
        return _answer(pages["/"], request)

    @router.api_route("/operator", methods=["GET", "HEAD"])
    async def operator_page(request: Request) -> Response:
        return _answer(pages["/operator"], request)

    @router.api_route("/static/{name}", methods=["GET", "HEAD"])
    async def static_file(name: str, request: Request) -> Response:
        file = statics.get(name)
        if file is None:
            raise ApiError(404, f"no static file {name!r}", code="not_found")
        return _answer(file, request)

    return router
