"""Opening the database: engines, schema, dialect helpers and error translation.

Two back ends: a SQLite file through aiosqlite (the embedded default) and
PostgreSQL through asyncpg (scale-out); for work that runs whole in a thread, a
SQLite file also has a synchronous twin engine (`sqlite_twin`). Nothing here runs
at import time.

SQLite connections run in WAL mode with ``synchronous=NORMAL``, foreign keys on
and a busy timeout. We emit ``BEGIN`` ourselves (the driver's implicit
transactions are switched off) so that a writer can start with
``BEGIN IMMEDIATE``: see `write_engine`.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, func
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert

from agent.errors import ConfigError, StoreError

__all__ = [
    "SUPPORTED_SCHEMES",
    "database_unreachable",
    "insert_ignoring",
    "lone_statements",
    "open_engine",
    "sqlite_twin",
    "store_errors",
    "upsert_adding",
    "write_engine",
]

SUPPORTED_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")

# Drivers we accept, and the async driver each one becomes.
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}

_Engine = TypeVar("_Engine", Engine, AsyncEngine)

# The execution option that makes a SQLite transaction start as a write transaction.
_IMMEDIATE = "heartline_begin_immediate"
_WAL = "PRAGMA journal_mode=WAL"
_WAL_RETRY_S = 0.005
_BUSY_TIMEOUT_S = 10.0


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as exc:
        raise ConfigError(
            f"database URL is not a valid URL ({exc}); use e.g. "
            "'sqlite+aiosqlite:///heartline.db' or "
            "'postgresql+asyncpg://user@host:5432/heartline'"
        ) from exc
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigError(
            f"unsupported database URL scheme {parsed.drivername!r}; use one of "
            f"{', '.join(SUPPORTED_SCHEMES)} (plain 'sqlite' and 'postgresql' work too)"
        )
    return parsed.set(drivername=driver)


def open_engine(
    url: str,
    *,
    # Limits
    pool_size: int = 10,
    max_overflow: int = 10,
    # Timeouts
    pool_timeout: float = 10.0,
    connect_timeout: float = 10.0,
) -> AsyncEngine:
    """An async engine for `url`; the caller disposes of it (`await engine.dispose()`).

    Raises `ConfigError` for a URL that is not SQLite or PostgreSQL. Opens no
    connection: the first query does.
    """
    parsed = _parse(url)
    if parsed.drivername == "sqlite+aiosqlite":
        engine = create_async_engine(parsed, hide_parameters=True, pool_timeout=pool_timeout)
        _configure_sqlite(engine.sync_engine)
        return engine
    return create_async_engine(
        parsed,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        connect_args={"timeout": connect_timeout},
    )


def sqlite_twin(engine: AsyncEngine) -> Engine | None:
    """A synchronous engine (the standard library's driver) over the SQLite file of
    `engine`, configured the same way; None for PostgreSQL or an in-memory database.

    For work that runs whole in a thread (`memory.sql.units`); the caller disposes of it.
    """
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    twin = create_engine(url.set(drivername="sqlite"), hide_parameters=True)
    _configure_sqlite(twin)
    return twin


def _configure_sqlite(engine: Engine) -> None:
    # First the busy timeout: switching the journal mode takes a lock that another
    # process starting at the same moment may hold, and only it makes this one wait.
    busy = f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}"
    after_wal = ("PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the driver from opening transactions on its own; `_on_begin` does it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(busy)
            _switch_to_wal(cursor, patience_s=_BUSY_TIMEOUT_S)
            for pragma in after_wal:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _switch_to_wal(cursor: Any, *, patience_s: float) -> None:
    """Put the database file in WAL mode, trying again for up to `patience_s`.

    When several connections switch a new file at the same moment, SQLite answers
    "database is locked" at once, busy timeout or not (it would otherwise deadlock).
    It happens only while a database is being created, so a short blocking wait here
    costs nothing later.
    """
    deadline = time.monotonic() + patience_s
    while True:
        try:
            cursor.execute(_WAL)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(_WAL_RETRY_S)


def write_engine(engine: _Engine) -> _Engine:
    """A view of `engine` (same pool) whose transactions are write transactions.

    On SQLite they start with ``BEGIN IMMEDIATE``, taking the write lock before
    the first read, so a read-then-write transaction cannot fail half-way with
    "database is locked". On PostgreSQL it changes nothing.
    """
    return engine.execution_options(**{_IMMEDIATE: True})


def lone_statements(engine: AsyncEngine) -> AsyncEngine:
    """A view of `engine` (same pool) for work whose statements need no transaction
    around them: reads, and writes each atomic on its own.

    On PostgreSQL each statement then commits by itself, which saves the BEGIN and
    COMMIT round trips; at PostgreSQL's default READ COMMITTED a statement sees what it
    would see inside a transaction. On SQLite it changes nothing.
    """
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def insert_ignoring(
    bind: AsyncEngine | Connection, table: Any, *, conflict: Sequence[str]
) -> Insert:
    """``INSERT ... ON CONFLICT (conflict) DO NOTHING`` in the dialect of `bind`."""
    return _insert_ignoring(bind.dialect.name == "postgresql", table, tuple(conflict))


def upsert_adding(
    bind: AsyncEngine | Connection,
    table: Any,
    *,
    conflict: Sequence[str],
    add: Sequence[str] = (),
    least: Sequence[str] = (),
    greatest: Sequence[str] = (),
    replace: Sequence[str] = (),
) -> Insert:
    """``INSERT ... ON CONFLICT (conflict) DO UPDATE``: `add` columns sum, `least` and
    `greatest` keep the smaller or larger value, `replace` take the new one. One atomic
    statement, so concurrent writers lose nothing.
    """
    return _upsert_adding(
        bind.dialect.name == "postgresql",
        table,
        *(tuple(names) for names in (conflict, add, least, greatest, replace)),
    )


# A statement is immutable and the same for every batch of a table; building one (the
# `excluded` columns above all) cost more than running it, once per batch written.
_STATEMENTS = 128


@functools.lru_cache(maxsize=_STATEMENTS)
def _insert_ignoring(postgres: bool, table: Any, conflict: tuple[str, ...]) -> Insert:
    statement = pg_insert(table) if postgres else sqlite_insert(table)
    return statement.on_conflict_do_nothing(index_elements=list(conflict))


@functools.lru_cache(maxsize=_STATEMENTS)
def _upsert_adding(
    postgres: bool,
    table: Any,
    conflict: tuple[str, ...],
    add: tuple[str, ...],
    least: tuple[str, ...],
    greatest: tuple[str, ...],
    replace: tuple[str, ...],
) -> Insert:
    statement = pg_insert(table) if postgres else sqlite_insert(table)
    new = statement.excluded
    smaller, larger = (func.least, func.greatest) if postgres else (func.min, func.max)
    values = {name: table.c[name] + new[name] for name in add}
    values |= {name: smaller(table.c[name], new[name]) for name in least}
    values |= {name: larger(table.c[name], new[name]) for name in greatest}
    values |= {name: new[name] for name in replace}
    return statement.on_conflict_do_update(index_elements=list(conflict), set_=values)


# SQLSTATEs of a server that is not there for now: connection exceptions (class 08),
# and one shutting down or starting up (57P01-57P03).
_OUTAGE_STATES = ("08", "57P01", "57P02", "57P03")


def database_unreachable(error: BaseException) -> bool:
    """Whether `error` (a `StoreError`, a timeout) says the database is away for now:
    refused or dropped connections, a server restarting, no connection in time. Such a
    failure passes when the database is back; others (a missing table) do not."""
    if isinstance(error, TimeoutError):
        return True
    cause = error.__cause__
    if isinstance(cause, OSError):
        return True
    if not isinstance(cause, sa_exc.DBAPIError):
        return False
    state = str(getattr(cause.orig, "sqlstate", "") or "")
    return cause.connection_invalidated or state.startswith(_OUTAGE_STATES)


@contextmanager
def store_errors(action: str) -> Iterator[None]:
    """Translate database errors raised inside into `StoreError`; timeouts stay `TimeoutError`.

    The engine hides bound parameters, so messages carry no user text.
    """
    try:
        yield
    except TimeoutError:
        raise
    except sa_exc.TimeoutError as exc:  # the pool had no free connection in time
        raise TimeoutError(f"{action}: {exc}") from exc
    except (sa_exc.SQLAlchemyError, OSError) as exc:
        raise StoreError(f"{action} failed: {type(exc).__name__}: {exc}") from exc
