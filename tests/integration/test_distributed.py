"""One gateway and two workers as real processes on a real Mosquitto and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from agent.gateway import TokenAuthority
from tests.fixtures.mqtt import PrivateBroker
from tests.support.cluster import cluster, converse, role_env
from tests.support.http import http_get
from tests.support.processes import RoleProcess

pytestmark = pytest.mark.integration

SESSIONS = 20
TURNS = 5


async def answered_by(port: int) -> int:
    status, _, body = await http_get(port, "/metrics")
    assert status == 200
    found = re.search(rb'heartline_turns_total\{outcome="answered"\} ([0-9.]+)', body)
    return int(float(found.group(1))) if found else 0


async def test_every_turn_is_answered_once_in_order_and_both_workers_work(
    private_broker: PrivateBroker, fresh_postgres_url: str, tmp_path: Path
) -> None:
    async with cluster(private_broker, fresh_postgres_url, tmp_path) as running:
        url = f"ws://127.0.0.1:{running.gateway_port}/ws"
        results = await asyncio.gather(
            *(converse(url, running.authority.issue(f"user{n}"), TURNS) for n in range(SESSIONS))
        )
        counts = [await answered_by(port) for port in running.worker_ports]
    for done in results:
        assert [turn_id for turn_id, _, _ in done] == [f"t{n}" for n in range(1, TURNS + 1)]
        assert all(text == joined and text for _, text, joined in done)
    assert sum(counts) == SESSIONS * TURNS
    assert min(counts) > 0, counts


async def test_turns_survive_a_worker_killed_mid_reply(
    private_broker: PrivateBroker, fresh_postgres_url: str, tmp_path: Path
) -> None:
    slow = {
        "HEARTLINE_TOKEN_DELAY": "0.05",
        # Longer than `converse` waits for a turn: the dead worker's turns come back
        # because its beats stopped, not because its leases ran out.
        "HEARTLINE_TURN_LEASE": "600",
        "HEARTLINE_REDELIVER_AFTER": "1",
    }
    async with cluster(private_broker, fresh_postgres_url, tmp_path, **slow) as running:
        url = f"ws://127.0.0.1:{running.gateway_port}/ws"
        conversations = asyncio.gather(
            *(converse(url, running.authority.issue(f"user{n}"), 3) for n in range(6))
        )
        await asyncio.sleep(1.0)  # replies are streaming on both workers
        running.workers[0].kill()
        results = await conversations
    for done in results:
        assert [turn_id for turn_id, _, _ in done] == ["t1", "t2", "t3"]
        assert all(text == joined and text for _, text, joined in done)


async def _readiness(port: int, wanted: int) -> None:
    """Until the gateway's /readyz answers `wanted`."""
    async with asyncio.timeout(30):
        while True:
            if (await http_get(port, "/readyz"))[0] == wanted:
                return
            await asyncio.sleep(0.05)


async def test_a_gateway_without_workers_is_not_ready_and_refuses_turns_at_once(
    private_broker: PrivateBroker, fresh_postgres_url: str, tmp_path: Path
) -> None:
    secret = secrets.token_hex(32)
    env = role_env(
        private_broker,
        fresh_postgres_url,
        secret,
        tmp_path / "data",
        HEARTLINE_WORKER_BEAT_INTERVAL="0.2",
    )
    token = TokenAuthority(secret.encode()).issue("alice")
    gateway = RoleProcess("gateway", ["gateway", "--port", "0"], env, tmp_path)
    worker: RoleProcess | None = None
    try:
        port = await gateway.wait_listening("gateway listening")
        url = f"ws://127.0.0.1:{port}/ws"
        await _readiness(port, 503)
        async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            assert json.loads(await ws.recv())["type"] == "ready"
            await asyncio.sleep(1.0)  # past the roster's three missed beats
            await ws.send(json.dumps({"type": "user_message", "id": "t1", "text": "hello?"}))
            async with asyncio.timeout(5):  # not the 60 s of re-publishing
                refused = json.loads(await ws.recv())
        assert (refused["type"], refused["code"], refused["turn_id"]) == (
            "error",
            "unavailable",
            "t1",
        )

        worker = RoleProcess("worker", ["worker"], env, tmp_path)
        await _readiness(port, 200)
        assert [turn for turn, _, _ in await converse(url, token, 1)] == ["t1"]
        assert worker.stop() == 0  # its last beat says it is leaving
        await _readiness(port, 503)
    finally:
        codes = [role.stop() for role in (gateway, worker) if role is not None]
    assert codes[0] == 0


async def test_right_after_a_broker_restart_turns_are_taken_not_refused(
    private_broker: PrivateBroker, fresh_postgres_url: str, tmp_path: Path
) -> None:
    quick = {"HEARTLINE_WORKER_BEAT_INTERVAL": "0.2", "HEARTLINE_REDELIVER_AFTER": "1"}
    async with cluster(private_broker, fresh_postgres_url, tmp_path, **quick) as running:
        url = f"ws://127.0.0.1:{running.gateway_port}/ws"
        token = running.authority.issue("alice")
        await _readiness(running.gateway_port, 200)
        private_broker.stop()
        await asyncio.sleep(2.0)  # many beat intervals without a beat
        private_broker.start()
        # The gateway did not hear the workers because it was cut off, not because they
        # are gone: the turn is answered (`converse` fails on an `unavailable` error).
        assert [turn for turn, _, _ in await converse(url, token, 1)] == ["t1"]


async def test_the_http_apis_reach_the_workers_through_the_bus(
    private_broker: PrivateBroker, fresh_postgres_url: str, tmp_path: Path
) -> None:
    async with cluster(private_broker, fresh_postgres_url, tmp_path) as running:
        base = f"http://127.0.0.1:{running.gateway_port}/v1"
        headers = {"Authorization": f"Bearer {running.authority.issue('bob')}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
            emotion = await http.post("/emotion", json={"texts": ["I am furious", "谢谢你"]})
            chat = await http.post(
                "/chat/completions",
                json={"model": "heartline", "messages": [{"role": "user", "content": "hello"}]},
            )
    assert emotion.status_code == 200, emotion.text
    assert [r["language"] for r in emotion.json()["data"]] == ["en", "zh"]
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"]["content"]
