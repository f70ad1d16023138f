"""Keys and age: re-encrypting under a new key, and purging rows on a schedule."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType

import structlog
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.errors import StoreError
from memory.crypto import TextCipher
from memory.sealing import MessageSealer
from memory.sql.engine import store_errors, write_engine
from memory.sql.models import TurnRow, UserRow
from memory.sql.users import PurgeResult, purge_before

__all__ = ["RetentionSweeper", "rotate_key"]

_log = structlog.get_logger(__name__)


async def rotate_key(
    engine: AsyncEngine,
    cipher: TextCipher,
    *,
    batch: int = 500,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Re-seal every stored message under the cipher's active key; returns turns rewritten.

    Walks the turns in id order, `batch` per transaction, so it can run while
    the agent serves; run it again after an interruption and it carries on
    (rows already under the active key are left alone). `progress` is told
    how many turns each batch read.
    """
    after, rewritten = 0, 0
    sealers: dict[str, MessageSealer] = {}
    query = (
        select(TurnRow.id, TurnRow.text, TurnRow.reply, UserRow.tenant, UserRow.external_id)
        .join(UserRow, UserRow.id == TurnRow.user_id)
        .where(TurnRow.id > bindparam("after"))
        .order_by(TurnRow.id)
        .limit(batch)
    )
    rewrite = (
        update(TurnRow)
        .where(TurnRow.id == bindparam("row"))
        .values(text=bindparam("new_text"), reply=bindparam("new_reply"))
    )
    while True:
        with store_errors("re-encrypting messages"):
            async with write_engine(engine).begin() as conn:
                rows = (await conn.execute(query, {"after": after})).all()
                changes = []
                for row in rows:
                    if not (cipher.needs_rotation(row.text) or cipher.needs_rotation(row.reply)):
                        continue
                    sealer = sealers.setdefault(
                        row.tenant, MessageSealer(tenant=row.tenant, cipher=cipher)
                    )
                    user = row.external_id
                    changes.append(
                        {
                            "row": row.id,
                            "new_text": sealer.reseal(row.text, user=user, column="turns.text"),
                            "new_reply": sealer.reseal(row.reply, user=user, column="turns.reply"),
                        }
                    )
                if changes:
                    await conn.execute(rewrite, changes)
        if not rows:
            return rewritten
        after, rewritten = rows[-1].id, rewritten + len(changes)
        if progress is not None:
            progress(len(rows))


class RetentionSweeper:
    """Purges rows older than `keep_for` seconds every `interval` seconds, while entered.

    Every worker may run one: purges are idempotent. A failed purge is logged
    and tried again at the next interval.
    """

    def __init__(self, engine: AsyncEngine, *, keep_for: float, interval: float = 3600.0) -> None:
        if keep_for <= 0 or interval <= 0:
            raise ValueError("keep_for and interval must be positive")
        self._engine = engine
        self._keep_for = keep_for
        self._interval = interval
        self._group: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RetentionSweeper:
        if self._group is not None:
            raise RuntimeError("this RetentionSweeper is already running")
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._task = self._group.create_task(self._run(), name="heartline-retention")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        group, task = self._group, self._task
        assert group is not None, "__aexit__ without __aenter__"
        assert task is not None
        self._group = self._task = None
        task.cancel()
        await group.__aexit__(exc_type, exc, tb)

    async def sweep(self) -> PurgeResult:
        """One purge now."""
        result = await purge_before(self._engine, time.time() - self._keep_for)
        _log.info("retention.purged", deleted=result.deleted, users_rebuilt=result.users_rebuilt)
        return result

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except (StoreError, TimeoutError) as exc:
                _log.warning("retention.purge_failed", error=str(exc))
            await asyncio.sleep(self._interval)
