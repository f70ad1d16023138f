"""Units of work (`memory.sql.units`) on a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import Connection, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from memory.sql.engine import lone_statements, open_engine, sqlite_twin
from memory.sql.models import UserRow
from memory.sql.schema import upgrade_schema
from memory.sql.units import open_units

pytestmark = pytest.mark.integration


def _add_user(conn: Connection, external_id: str) -> int:
    conn.execute(
        UserRow.__table__.insert().values(tenant="default", external_id=external_id, created_at=0.0)
    )
    return int(conn.execute(select(func.count()).select_from(UserRow)).scalar_one())


async def _users(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(UserRow.external_id))).scalars())


async def test_a_unit_commits_when_it_returns_and_rolls_back_when_it_raises(
    sql_engine: AsyncEngine,
) -> None:
    units = open_units(sql_engine, write=True, name="test-units")
    try:
        assert await units.run(lambda conn: _add_user(conn, "kept")) == 1

        def fails(conn: Connection) -> None:
            _add_user(conn, "rolled-back")
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await units.run(fails)
    finally:
        await units.aclose()
    assert await _users(sql_engine) == ["kept"]


async def test_sqlite_units_run_in_a_thread_of_their_own_with_the_engines_settings(
    sqlite_url: str,
) -> None:
    engine = open_engine(sqlite_url)
    units = open_units(engine, write=True, name="test-units")
    try:

        def where(conn: Connection) -> tuple[str, str, int]:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()
            keys = conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one()
            return threading.current_thread().name, mode, keys

        thread, mode, foreign_keys = await units.run(where)
    finally:
        await units.aclose()
        await engine.dispose()
    assert thread.startswith("test-units")
    assert (mode, foreign_keys) == ("wal", 1)


async def test_postgresql_units_run_on_the_loop(postgres_url: str) -> None:
    engine = open_engine(postgres_url)
    units = open_units(engine, write=False, name="test-units")
    try:
        thread = await units.run(lambda conn: threading.current_thread())
        assert await units.run(lambda conn: conn.execute(text("SELECT 1")).scalar_one()) == 1
    finally:
        await units.aclose()
        await engine.dispose()
    assert thread is threading.current_thread()


def _two_transaction_ids(conn: Connection) -> set[int]:
    return {int(conn.execute(text("SELECT txid_current()")).scalar_one()) for _ in range(2)}


async def test_postgresql_reads_need_no_transaction_and_writes_keep_theirs(
    postgres_url: str,
) -> None:
    engine = open_engine(postgres_url)
    reads = open_units(engine, write=False, name="test-units")
    writes = open_units(engine, write=True, name="test-units")
    try:
        # A statement outside a transaction is a transaction of its own: no BEGIN and
        # COMMIT round trips around a read.
        assert len(await reads.run(_two_transaction_ids)) == 2
        assert len(await writes.run(_two_transaction_ids)) == 1
        async with lone_statements(engine).connect() as conn:
            assert len(await conn.run_sync(_two_transaction_ids)) == 2
        async with engine.connect() as conn:  # the engine itself is as it was
            assert len(await conn.run_sync(_two_transaction_ids)) == 1
    finally:
        await reads.aclose()
        await writes.aclose()
        await engine.dispose()


def test_sqlite_engines_are_their_own_lone_statements(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url)
    assert lone_statements(engine) is engine


def test_only_a_sqlite_file_has_a_twin(sqlite_url: str, postgres_url: str) -> None:
    assert sqlite_twin(open_engine(postgres_url)) is None
    assert sqlite_twin(create_async_engine("sqlite+aiosqlite://")) is None
    twin = sqlite_twin(open_engine(sqlite_url))
    assert twin is not None
    assert twin.url.drivername == "sqlite"
    assert twin.url.database == open_engine(sqlite_url).url.database


async def test_a_sqlite_unit_whose_caller_stops_waiting_still_commits_before_closing(
    sqlite_url: str,
) -> None:
    engine = open_engine(sqlite_url)
    await upgrade_schema(engine)
    units = open_units(engine, write=True, name="test-units")
    started, go_on = threading.Event(), threading.Event()

    def held(conn: Connection) -> int:
        started.set()
        go_on.wait(5)
        return _add_user(conn, "late")

    try:
        running = asyncio.ensure_future(units.run(held))
        assert await asyncio.to_thread(started.wait, 5)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        go_on.set()
        await units.aclose()  # returns once the unit is done and the connection closed
        assert await _users(engine) == ["late"]
    finally:
        go_on.set()
        await engine.dispose()
