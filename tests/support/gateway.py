"""A gateway on a real in-process bus, and the client helpers its tests share."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypedDict

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from agent.bus import InProcessBus
from agent.bus.base import Subscription
from agent.events import (
    Event,
)
from agent.gateway import (
    ConnectionLimits,
    Gateway,
    GatewaySettings,
    TokenAuthority,
    serve_gateway,
)
from agent.gateway.admission import AdmissionLimits
from agent.gateway.roster import Availability
from agent.metrics import Metrics

__all__ = [
    "AUTHORITY",
    "WAIT_S",
    "Env",
    "Ids",
    "bearer",
    "closed_code",
    "next_event",
    "receive",
    "running",
    "send",
    "session",
]


class Ids(TypedDict):
    session_id: str
    turn_id: str


WAIT_S = 10.0
AUTHORITY = TokenAuthority(b"e2e-secret-" * 4)


@dataclass
class Env:
    bus: InProcessBus
    gateway: Gateway
    metrics: Metrics

    @property
    def url(self) -> str:
        return self.gateway.url


@asynccontextmanager
async def running(
    limits: ConnectionLimits | None = None,
    ready: Callable[[], bool] = lambda: True,
    workers: Callable[[], Availability] = lambda: Availability.AVAILABLE,
    max_body_bytes: int = 1024 * 1024,
    admission: AdmissionLimits | None = None,
    route_changed: Callable[[], float] = lambda: -math.inf,
) -> AsyncIterator[Env]:
    metrics = Metrics()
    settings = GatewaySettings(
        port=0,
        limits=limits or ConnectionLimits(),
        admission=admission or AdmissionLimits(),
        max_body_bytes=max_body_bytes,
    )
    async with (
        InProcessBus() as bus,
        serve_gateway(
            bus,
            authority=AUTHORITY,
            metrics=metrics,
            settings=settings,
            ready=ready,
            workers=workers,
            route_changed=route_changed,
        ) as gateway,
    ):
        yield Env(bus, gateway, metrics)


def bearer(user_id: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {AUTHORITY.issue(user_id)}"}


async def receive(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT_S):
        message = json.loads(await ws.recv())
    assert isinstance(message, dict)
    return message


async def send(ws: ClientConnection, **fields: Any) -> None:
    await ws.send(json.dumps(fields))


async def closed_code(ws: ClientConnection) -> int | None:
    """Read until the server closes; the close code it sent."""
    async with asyncio.timeout(WAIT_S):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code


async def next_event(subscription: Subscription) -> tuple[str, Event]:
    async with asyncio.timeout(WAIT_S):
        delivery = await subscription.get()
    return delivery.topic, delivery.event


@asynccontextmanager
async def session(env: Env, user_id: str = "alice") -> AsyncIterator[tuple[ClientConnection, str]]:
    async with connect(env.url, additional_headers=bearer(user_id)) as ws:
        ready = await receive(ws)
        assert ready["type"] == "ready"
        yield ws, ready["session_id"]
