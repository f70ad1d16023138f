"""The pages' HTTP answers: content types, caching and the Content-Security-Policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agent.app import Running
from agent.gateway.pages import CONTENT_SECURITY_POLICY
from tests.support.pages import root_url, serving


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    running: Running
    async with (
        serving(tmp_path / "data") as running,
        httpx.AsyncClient(base_url=root_url(running), timeout=10.0) as http,
    ):
        yield http


@pytest.mark.parametrize(("path", "marker"), [("/", "chat.js"), ("/operator", "operator.js")])
async def test_pages_are_html_with_a_strict_policy(
    client: httpx.AsyncClient, path: str, marker: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert "unsafe-inline" not in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"
    assert "access-control-allow-origin" not in response.headers
    assert f'<script type="module" src="/static/{marker}"></script>' in response.text
    # Nothing inline: no script bodies, no style attributes or elements.
    assert "<script>" not in response.text
    assert "style=" not in response.text
    assert "<style" not in response.text


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("heartline.js", "text/javascript; charset=utf-8"),
        ("chat.js", "text/javascript; charset=utf-8"),
        ("operator.js", "text/javascript; charset=utf-8"),
        ("timeline.js", "text/javascript; charset=utf-8"),
        ("heartline.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
async def test_static_files_have_their_types_and_revalidate(
    client: httpx.AsyncClient, name: str, media_type: str
) -> None:
    response = await client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["access-control-allow-origin"] == "*"
    etag = response.headers["etag"]
    again = await client.get(f"/static/{name}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    other = await client.get(f"/static/{name}", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200
    assert other.content == response.content


@pytest.mark.parametrize("path", ["/static/missing.js", "/static/..%2Fpages.py", "/static/"])
async def test_unknown_files_are_404_in_the_api_error_shape(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


async def test_the_pages_stay_out_of_the_api_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths
    assert "/operator" not in paths
    assert not [path for path in paths if path.startswith("/static")]
