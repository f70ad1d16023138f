"""The database schema's version: Alembic migrations, run from the code.

`upgrade_schema` brings any database to the newest revision (an empty one
included) and is what every role calls at start; `heartline db upgrade` and
`heartline db downgrade` run the same code by hand. Processes that start
together take turns: on PostgreSQL they serialise on an advisory lock, on
SQLite on the write lock of ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from memory.sql.engine import store_errors, write_engine

__all__ = ["MIGRATIONS", "downgrade_schema", "head_revision", "schema_revision", "upgrade_schema"]

MIGRATIONS = Path(__file__).parent / "migrations"

# Any fixed number: processes starting together take turns migrating.
_SCHEMA_LOCK = 0x4845_4152_544C  # "HEARTL"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this version of Heartline knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the migrations folder holds no revision"
    return head


async def upgrade_schema(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate forward to `revision` (default: the newest); a no-op when already there."""
    await _migrate(engine, "upgrading the schema", lambda c: command.upgrade(_config(c), revision))


async def downgrade_schema(engine: AsyncEngine, revision: str = "-1") -> None:
    """Migrate back to `revision` (default: one step). Data in dropped tables is lost."""
    await _migrate(
        engine, "downgrading the schema", lambda c: command.downgrade(_config(c), revision)
    )


async def schema_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at; None for an empty database."""
    with store_errors("reading the schema revision"):
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision()
            )


async def _migrate(engine: AsyncEngine, action: str, run: Callable[[Connection], None]) -> None:
    with store_errors(action):
        async with write_engine(engine).begin() as conn:
            if engine.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK}
                )
            await conn.run_sync(run)
