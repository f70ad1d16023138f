"""A gateway and two workers as real processes, and a client that talks to them."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from agent.gateway import TokenAuthority
from tests.fixtures.mqtt import PrivateBroker
from tests.support.processes import RoleProcess

__all__ = ["TEXTS", "Cluster", "cluster", "converse", "role_env"]

TEXTS = (
    "Where is my parcel?",
    "This is ridiculous, I am furious!",
    "Thank you, that is wonderful",
    "我很担心我的订单",
    "I feel so sad about this",
)


@dataclass
class Cluster:
    gateway_port: int
    worker_ports: list[int]
    workers: list[RoleProcess]
    authority: TokenAuthority


def role_env(
    broker: PrivateBroker, database_url: str, secret: str, data_dir: Path, **extra: str
) -> dict[str, str]:
    """The settings every role of one deployment shares."""
    return {
        "HEARTLINE_MQTT_HOST": broker.host,
        "HEARTLINE_MQTT_PORT": str(broker.port),
        "HEARTLINE_DATABASE_URL": database_url,
        "HEARTLINE_SECRET": secret,
        "HEARTLINE_DATA_DIR": str(data_dir),
        **extra,
    }


@asynccontextmanager
async def cluster(
    broker: PrivateBroker,
    database_url: str,
    logs: Path,
    per_role: dict[str, dict[str, str]] | None = None,
    **extra_env: str,
) -> AsyncIterator[Cluster]:
    """A gateway and two workers; `per_role` adds settings for "gateway" or "worker"."""
    secret = secrets.token_hex(32)
    env = role_env(broker, database_url, secret, logs / "data", **extra_env)
    own = per_role or {}
    workers = [
        RoleProcess(
            f"worker{n}", ["worker", "--probe-port", "0"], env | own.get("worker", {}), logs
        )
        for n in range(2)
    ]
    gateway = RoleProcess("gateway", ["gateway", "--port", "0"], env | own.get("gateway", {}), logs)
    roles = [*workers, gateway]
    try:
        worker_ports = [await worker.wait_ready("probes listening") for worker in workers]
        gateway_port = await gateway.wait_ready("gateway listening")
        yield Cluster(gateway_port, worker_ports, workers, TokenAuthority(secret.encode()))
    finally:
        codes = {role.name: role.stop() for role in roles}
    assert all(
        code == 0 for role, code in zip(roles, codes.values(), strict=True) if not role.killed
    ), codes


async def converse(
    url: str, token: str, turns: int, texts: Sequence[str] = TEXTS
) -> list[tuple[str, str, str]]:
    """Send `turns` messages one after another; (turn id, final text, joined deltas) each."""
    done: list[tuple[str, str, str]] = []
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready"
        for n in range(1, turns + 1):
            turn_id = f"t{n}"
            await ws.send(
                json.dumps({"type": "user_message", "id": turn_id, "text": texts[n % len(texts)]})
            )
            deltas: list[str] = []
            async with asyncio.timeout(60):
                while True:
                    message: dict[str, Any] = json.loads(await ws.recv())
                    assert message["type"] != "error", message
                    assert message.get("turn_id") == turn_id, (message, turn_id)
                    if message["type"] == "reply_start":
                        deltas = []  # a restarted reply (fail-over) replaces the partial one
                    elif message["type"] == "reply_delta":
                        deltas.append(message["text"])
                    elif message["type"] == "reply_end":
                        done.append((turn_id, message["text"], "".join(deltas)))
                        break
        # Nothing else may arrive for this session: each turn was answered exactly once.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await ws.recv()
    return done
