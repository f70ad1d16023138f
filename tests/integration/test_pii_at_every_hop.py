"""Personal data stops at the gateway: none of a corpus reaches the bus, a table, the
write-ahead log, the broker's files or a log, whichever surface it came in by."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import aiomqtt
import asyncpg
import httpx
import pytest

from tests.fixtures.mqtt import PrivateBroker
from tests.fixtures.private_postgres import PrivatePostgres
from tests.support.cluster import cluster, converse

pytestmark = pytest.mark.integration

# 28 values as people write them: e-mails, US, UK, German and Chinese phones in national
# and international form, cards, IBANs, Chinese ID numbers, IP addresses.
CORPUS = (
    "alice.smith@example.com",
    "wang.lei@163.com",
    "zhangsan@qq.com",
    "(415) 555-0132",
    "+1 212 555 0187",
    "07700 900123",
    "020 7946 0321",
    "0161 496 0123",
    "+44 20 7946 0958",
    "030 12345678",
    "+49 30 12345678",
    "13812345678",
    "+86 139 1234 5678",
    "13912345678",
    "010-62345678",
    "(021)64381234",
    "4111 1111 1111 1111",
    "5500-0000-0000-0004",
    "3782 822463 10005",
    "6222021234567890128",
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "FR14 2004 1010 0505 0001 3M02 606",
    "11010519491231002X",
    "440305198510231236",
    "203.0.113.45",
    "192.168.10.25",
    "2001:db8::8a2e:370:7334",
)
MESSAGES = tuple(
    f"I'm furious, reach me at {value} today!" if n % 2 else f"我很生气，请联系我：{value}，谢谢"
    for n, value in enumerate(CORPUS)
)


def _needles(value: str) -> Iterator[bytes]:
    """The value as written and, for numbers written in groups, without the separators."""
    yield value.encode()
    compact = re.sub(r"[ \-()]", "", value)
    if compact != value:
        yield compact.encode()


def _leaks(haystack: bytes) -> list[str]:
    return [value for value in CORPUS if any(n in haystack for n in _needles(value))]


def _files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def _leaking_files(paths: Iterable[Path]) -> dict[str, list[str]]:
    leaking = {str(path): _leaks(path.read_bytes()) for path in paths}
    return {path: values for path, values in leaking.items() if values}


@contextlib.asynccontextmanager
async def _captured(broker: PrivateBroker) -> AsyncIterator[list[bytes]]:
    """Every payload published on the broker while the block runs."""
    payloads: list[bytes] = []
    async with aiomqtt.Client(broker.host, broker.port, identifier="pii-capture") as client:
        await client.subscribe("#", qos=1)

        async def collect() -> None:
            async for message in client.messages:
                payloads.append(bytes(message.payload))  # type: ignore[arg-type]

        task = asyncio.create_task(collect())
        try:
            yield payloads
            await asyncio.sleep(0.5)  # the last replies' events
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _tables(postgres: PrivatePostgres) -> bytes:
    """Every row of every table of the database as text, after a checkpoint has written
    the table files."""
    conn = await asyncpg.connect(host="127.0.0.1", port=postgres.port, user="postgres")
    try:
        names = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        assert {"turns", "turn_ledger"} <= {row["tablename"] for row in names}
        rows = [
            str(dict(row)).encode()
            for name in names
            for row in await conn.fetch(f'SELECT * FROM "{name["tablename"]}"')
        ]
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return b"\n".join(rows)


async def test_no_personal_data_reaches_the_bus_the_database_or_the_logs(
    private_broker: PrivateBroker, private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    async with (
        cluster(private_broker, private_postgres.url, tmp_path) as running,
        _captured(private_broker) as bus,
    ):
        token = running.authority.issue("carol")
        url = f"ws://127.0.0.1:{running.gateway_port}/ws"
        half = len(MESSAGES) // 2
        done = await converse(url, token, half, MESSAGES[:half])
        assert len(done) == half
        base = f"http://127.0.0.1:{running.gateway_port}/v1"
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
            for text in MESSAGES[half:]:
                chat = await http.post(
                    "/chat/completions",
                    json={"model": "heartline", "messages": [{"role": "user", "content": text}]},
                )
                assert chat.status_code == 200, chat.text
            emotion = await http.post("/emotion", json={"texts": list(MESSAGES)})
            assert emotion.status_code == 200, emotion.text
    assert len(bus) > 4 * len(MESSAGES)  # the capture saw the turns go by
    captured = b"\n".join(bus)
    assert b"[EMAIL]" in captured  # what went instead
    assert b"[PHONE]" in captured
    assert _leaks(captured) == [], "raw personal data on the bus"

    tables = await _tables(private_postgres)
    assert b"[PHONE]" in tables
    assert _leaks(tables) == [], "raw personal data in a table"
    # Table files with their dead rows, and the write-ahead log.
    assert _leaking_files(private_postgres.files()) == {}
    private_broker.stop()  # it writes its store
    # The broker's store and log, the roles' logs.
    assert _leaking_files(_files_under(tmp_path)) == {}
