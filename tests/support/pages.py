"""What the pages' browser tests share: the embedded server, tokens, and the frames a
page's WebSocket carried."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from playwright.async_api import Page, WebSocket, expect

from agent.app import Running, embedded
from agent.config import load_settings
from agent.gateway.auth import Role

__all__ = [
    "AROUSAL_RGB",
    "EXPECT_MS",
    "VALENCE_RGB",
    "Frames",
    "replies_done",
    "root_url",
    "say",
    "serving",
    "token",
]

EXPECT_MS = 20_000
"""How long `expect` waits for what a person should see (generous: CI machines are slow)."""


# The timeline's line colours (heartline.css), for screenshot checks.
VALENCE_RGB = (0x25, 0x63, 0xEB)
AROUSAL_RGB = (0xEA, 0x58, 0x0C)


@asynccontextmanager
async def serving(
    data_dir: Path,
    *,
    token_delay: float = 0.02,
    idle_timeout: float = 300.0,
    frame_limit_bytes: int = 64 * 1024,
) -> AsyncIterator[Running]:
    """`heartline serve` in this process, on a free port, with the quick lexicon model."""
    settings = load_settings(
        data_dir=data_dir,
        port=0,
        token_delay=token_delay,
        emotion_model="lexicon",
        idle_timeout=idle_timeout,
        frame_limit_bytes=frame_limit_bytes,
    )
    async with embedded(settings) as running:
        yield running


def root_url(app: Running) -> str:
    assert app.gateway is not None
    return app.gateway.http_url


def token(app: Running, user: str = "alice", *, role: Role = Role.USER) -> str:
    assert app.authority is not None
    return app.authority.issue(user, role=role)


class Frames:
    """Every JSON frame a page's WebSockets sent and received, in order."""

    def __init__(self, page: Page) -> None:
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        page.on("websocket", self._follow)

    def _follow(self, socket: WebSocket) -> None:
        socket.on("framesent", lambda payload: self.sent.append(_json(payload)))
        socket.on("framereceived", lambda payload: self.received.append(_json(payload)))

    def of(self, kind: str, *, sent: bool = False) -> list[dict[str, Any]]:
        frames = self.sent if sent else self.received
        return [frame for frame in frames if frame.get("type") == kind]


def _json(payload: str | bytes) -> dict[str, Any]:
    data = json.loads(payload)
    assert isinstance(data, dict)
    return data


async def say(page: Page, text: str) -> None:
    """Type `text` into the page's message box and send it."""
    await page.locator("#input").fill(text)
    await page.locator("#input").press("Enter")


async def replies_done(page: Page, count: int) -> None:
    """Wait until `count` bot replies have ended (their thumbs show)."""
    await expect(page.locator(".msg-bot .thumb[data-score='5']")).to_have_count(
        count, timeout=EXPECT_MS
    )
