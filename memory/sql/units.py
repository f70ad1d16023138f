"""A store's unit of work: one synchronous function on one connection, in one transaction
(reads on PostgreSQL: statement by statement, `lone_statements`).

A batch of the writer or a history read is several statements. On PostgreSQL
(asyncpg) each is a round trip the loop awaits without blocking, so a unit runs on
the loop through `run_sync`. SQLite's async driver (aiosqlite) hands every call of
the DBAPI to its thread and back instead: about 80 hand-overs for a batch of one
turn, 5.6 ms of CPU. For SQLite a unit runs whole in a thread of its own, on a
synchronous engine over the same file: one hand-over a unit (1.3 ms for that batch,
`bench/batch_cost.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from memory.sql.engine import lone_statements, sqlite_twin, write_engine

__all__ = ["UnitRunner", "open_units"]

T = TypeVar("T")


class UnitRunner(Protocol):
    """Runs units of work; `aclose` once done with it."""

    async def run(self, unit: Callable[[Connection], T]) -> T:
        """`unit(conn)` in a transaction that commits when it returns and rolls back
        when it raises (a read unit on PostgreSQL: each statement on its own, as
        `lone_statements` says); its result. Errors are SQLAlchemy's, as `run_sync` lets
        them out.

        Cancelling stops the wait. On SQLite the transaction goes on in its thread to
        its commit or rollback; on PostgreSQL it rolls back.
        """
        ...

    async def aclose(self) -> None: ...


def open_units(engine: AsyncEngine, *, write: bool, name: str) -> UnitRunner:
    """Units on `engine`'s database; `write`: write transactions (see `write_engine`).

    `name` names the SQLite thread. Opens no connection: the first unit does.
    """
    twin = sqlite_twin(engine)
    if twin is None:
        return _OnTheLoop(write_engine(engine) if write else lone_statements(engine))
    return _InAThread(twin, write=write, name=name)


class _OnTheLoop:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def run(self, unit: Callable[[Connection], T]) -> T:
        async with self._engine.begin() as conn:
            return await conn.run_sync(unit)

    async def aclose(self) -> None:
        """Nothing to release: the engine is the caller's."""


class _InAThread:
    def __init__(self, engine: Engine, *, write: bool, name: str) -> None:
        self._engine = engine
        self._bind = write_engine(engine) if write else engine
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, unit: Callable[[Connection], T]) -> T:
        return await asyncio.wrap_future(self._thread.submit(self._in_transaction, unit))

    def _in_transaction(self, unit: Callable[[Connection], T]) -> T:
        with self._bind.begin() as conn:
            return unit(conn)

    async def aclose(self) -> None:
        """Close the connection in its thread, after any unit still running there."""
        try:
            await asyncio.wrap_future(self._thread.submit(self._engine.dispose))
        finally:
            self._thread.shutdown(wait=False)
