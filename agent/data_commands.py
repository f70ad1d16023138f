"""The data commands of the CLI: `heartline db ...` and `heartline users ...`.

Each opens the configured database, does one thing and disposes of the
engine. They act on the configured tenant (`--tenant`, HEARTLINE_TENANT).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from tqdm import tqdm

from agent.config import Settings
from agent.errors import ConfigError
from memory.crypto import new_key
from memory.sealing import MessageSealer
from memory.sql import downgrade_schema, open_engine, schema_revision, upgrade_schema
from memory.sql.models import TurnRow
from memory.sql.retention import rotate_handoff_key, rotate_key
from memory.sql.schema import head_revision
from memory.sql.users import export_user, forget_user, purge_before

__all__ = [
    "db_current",
    "db_downgrade",
    "db_new_key",
    "db_purge",
    "db_rotate_key",
    "db_upgrade",
    "users_export",
    "users_forget",
]


@asynccontextmanager
async def _engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = open_engine(settings.resolved_database_url())
    try:
        yield engine
    finally:
        await engine.dispose()


async def db_upgrade(settings: Settings, revision: str) -> None:
    async with _engine(settings) as engine:
        before = await schema_revision(engine)
        await upgrade_schema(engine, revision)
        after = await schema_revision(engine)
    print(f"schema {before or 'empty'} -> {after} (newest: {head_revision()})")


async def db_downgrade(settings: Settings, revision: str) -> None:
    async with _engine(settings) as engine:
        before = await schema_revision(engine)
        if before is None:
            raise ConfigError("the database has no schema to downgrade")
        await downgrade_schema(engine, revision)
        after = await schema_revision(engine)
    print(f"schema {before} -> {after or 'empty'}")


async def db_current(settings: Settings) -> None:
    async with _engine(settings) as engine:
        current = await schema_revision(engine)
    head = head_revision()
    state = "up to date" if current == head else f"behind {head}: run `heartline db upgrade`"
    print(f"schema {current or 'empty'} ({state})")


async def db_purge(settings: Settings, older_than_days: float | None) -> None:
    days = older_than_days if older_than_days is not None else settings.retention_days
    if days is None or days <= 0:
        raise ConfigError("say how old: --older-than-days N, or set HEARTLINE_RETENTION_DAYS")
    async with _engine(settings) as engine:
        await upgrade_schema(engine)
        result = await purge_before(engine, time.time() - days * 86_400.0)
    print(json.dumps({"older_than_days": days, **asdict(result)}, indent=2))


async def db_rotate_key(settings: Settings) -> None:
    cipher = settings.cipher()
    if cipher is None:
        raise ConfigError(
            "no keyring: set HEARTLINE_ENCRYPTION_KEYS to 'NEW:KEY,OLD:KEY' (new key first; "
            "make one with `heartline db new-key`)"
        )
    async with _engine(settings) as engine:
        await upgrade_schema(engine)
        async with engine.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(TurnRow))).scalar_one()
        with tqdm(total=total, unit="turn", desc="re-encrypting", file=sys.stderr) as bar:
            rewritten = await rotate_key(engine, cipher, progress=bar.update)
        handoffs = await rotate_handoff_key(engine, cipher)
    print(f"{rewritten} of {total} turns re-encrypted under key {cipher.active_key_id!r}")
    if handoffs:
        print(f"{handoffs} handoff documents re-encrypted")


def db_new_key(key_id: str) -> None:
    print(f"{key_id}:{new_key()}")


async def users_export(settings: Settings, user: str) -> str:
    """Everything held about `user` as indented JSON."""
    sealer = MessageSealer(tenant=settings.tenant, cipher=settings.cipher())
    async with _engine(settings) as engine:
        await upgrade_schema(engine)
        data = await export_user(engine, user, sealer=sealer, tenant=settings.tenant)
    if data is None:
        raise ConfigError(f"no data about user {user!r} in tenant {settings.tenant!r}")
    return json.dumps(data, indent=2, ensure_ascii=False, default=_json_default)


async def users_forget(settings: Settings, user: str) -> None:
    async with _engine(settings) as engine:
        await upgrade_schema(engine)
        deleted = await forget_user(engine, user, tenant=settings.tenant)
    if not deleted:
        raise ConfigError(f"no data about user {user!r} in tenant {settings.tenant!r}")
    print(json.dumps({"user": user, "tenant": settings.tenant, "deleted": deleted}, indent=2))


def _json_default(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot export {type(value).__name__}")
