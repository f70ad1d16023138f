"""The conversation store rides out a PostgreSQL it cannot reach for a while.

The store talks to the test database through a TCP proxy that the test cuts:
every connection is dropped and new ones are refused, as when the server goes
down or the network between them does, and then comes back.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.engine import make_url

from memory.sql import SqlConversationStore, WriterConfig, open_engine, upgrade_schema
from memory.sql.models import TurnRow
from tests.support.records import count, turn
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.timeout(120)

OUTAGE_S = 3.0


async def test_turns_recorded_while_the_database_is_away_are_written_when_it_is_back(
    fresh_postgres_url: str,
) -> None:
    url = make_url(fresh_postgres_url)
    direct = open_engine(fresh_postgres_url)
    await upgrade_schema(direct)
    config = WriterConfig(backoff=0.05, max_backoff=0.5)
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
        engine = open_engine(proxied, connect_timeout=1.0)
        try:
            async with SqlConversationStore(engine, writer=config) as store:
                await store.record_turn(turn("s1", 1))
                await store.flush()
                await proxy.cut()
                for seq in range(2, 12):
                    await store.record_turn(turn("s1", seq))
                await asyncio.sleep(OUTAGE_S)  # the writer keeps trying meanwhile
                await proxy.restore()
                async with asyncio.timeout(30):
                    await store.flush()
                assert store.stats.retries > 0
        finally:
            await engine.dispose()
    try:
        assert await count(direct, TurnRow) == 11
    finally:
        await direct.dispose()
