"""The deployment's broker accounts and ACL: each role does its job and nothing else."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from websockets.asyncio.client import connect

from tests.fixtures.mqtt import PrivateBroker, find_mosquitto
from tests.fixtures.services import missing
from tests.support.cluster import cluster, converse

pytestmark = pytest.mark.integration

ACCOUNTS = {"gateway": secrets.token_hex(8), "worker": secrets.token_hex(8)}


@pytest.fixture
def guarded_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    binary = find_mosquitto()
    if binary is None:
        missing("the mosquitto binary is not installed")
    folder = tmp_path / "broker"
    folder.mkdir()
    broker = PrivateBroker(binary, folder, accounts=ACCOUNTS)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        broker.remove_files()


def _as(role: str) -> dict[str, str]:
    return {"HEARTLINE_MQTT_USERNAME": role, "HEARTLINE_MQTT_PASSWORD": ACCOUNTS[role]}


def _client(broker: PrivateBroker, role: str | None) -> aiomqtt.Client:
    login = {} if role is None else {"username": role, "password": ACCOUNTS[role]}
    return aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5, **login)


# A topic each role may both write and read, for the message that follows the probe.
_OWN = {"gateway": "hl/v1/watch/probe", "worker": "hl/v1/workers/probe"}


async def _delivered(
    broker: PrivateBroker, *, reader: str, subscribed: str, writer: str, topic: str
) -> bool:
    """Whether `reader`, subscribed to `subscribed`, gets what `writer` publishes on `topic`.

    The reader then publishes to itself on a topic of its own; the broker handles
    messages in the order they come, so once that one is back the first would be too.
    """
    async with _client(broker, reader) as listening, _client(broker, writer) as writing:
        await listening.subscribe(subscribed, qos=1)
        await listening.subscribe(_OWN[reader], qos=1)
        await writing.publish(topic, b"probe", qos=1)
        await listening.publish(_OWN[reader], b"after", qos=1)
        async with asyncio.timeout(10):
            async for message in listening.messages:
                if message.payload == b"after":
                    return False
                if message.payload == b"probe":
                    return True
    raise AssertionError("the subscription ended")


async def test_each_role_works_with_its_own_account(
    guarded_broker: PrivateBroker, fresh_postgres_url: str, tmp_path: Path
) -> None:
    roles = {"gateway": _as("gateway"), "worker": _as("worker")}
    async with cluster(guarded_broker, fresh_postgres_url, tmp_path, per_role=roles) as running:
        url = f"ws://127.0.0.1:{running.gateway_port}/ws"
        token = running.authority.issue("alice")
        done = await converse(url, token, 2)
        session_id = await _answered_session(url, token)
        resumed = await _ready(f"{url}?resume={session_id}", token)
    assert [turn_id for turn_id, _, _ in done] == ["t1", "t2"]
    assert (resumed["session_id"], resumed["resumed"]) == (session_id, True)  # lookups pass


async def _ready(url: str, token: str) -> dict[str, Any]:
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        ready: dict[str, Any] = json.loads(await ws.recv())
    return ready


async def _answered_session(url: str, token: str) -> str:
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        session_id: str = json.loads(await ws.recv())["session_id"]
        await ws.send(json.dumps({"type": "user_message", "id": "t1", "text": "hello"}))
        async with asyncio.timeout(30):
            while json.loads(await ws.recv())["type"] != "reply_end":
                pass
    return session_id


async def test_no_account_no_entry_and_each_role_reads_and_writes_only_its_topics(
    guarded_broker: PrivateBroker,
) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with _client(guarded_broker, None):
            pass
    turn = {"subscribed": "hl/v1/turn/+", "topic": "hl/v1/turn/s1"}
    assert await _delivered(guarded_broker, reader="worker", writer="gateway", **turn)
    # A gateway never reads turns; a worker never writes them.
    assert not await _delivered(guarded_broker, reader="gateway", writer="gateway", **turn)
    assert not await _delivered(guarded_broker, reader="worker", writer="worker", **turn)
    # Emotion readings are for gateways only.
    results = {"subscribed": "hl/v1/emotion/results/+", "topic": "hl/v1/emotion/results/g1"}
    assert await _delivered(guarded_broker, reader="gateway", writer="worker", **results)
    assert not await _delivered(guarded_broker, reader="worker", writer="worker", **results)
