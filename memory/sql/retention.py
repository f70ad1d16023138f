"""Keys and age: re-encrypting under a new key, and purging rows on a schedule."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from memory.crypto import TextCipher
from memory.periodic import Periodic
from memory.sealing import TenantSealers
from memory.sql.engine import store_errors, write_engine
from memory.sql.handoffs import HANDOFF_BODY
from memory.sql.models import HandoffDeliveryRow, TurnRow, UserRow
from memory.sql.users import PurgeResult, purge_before

__all__ = ["retention_sweeper", "rotate_handoff_key", "rotate_key"]

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
    sealers = TenantSealers(cipher)
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
                    sealer = sealers.for_tenant(row.tenant)
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


async def rotate_handoff_key(engine: AsyncEngine, cipher: TextCipher) -> int:
    """Re-seal the stored handoff documents under the active key; returns how many.

    They are few (kept until delivered and purged), so one transaction does.
    """
    sealers = TenantSealers(cipher)
    rows = select(
        HandoffDeliveryRow.id,
        HandoffDeliveryRow.body,
        HandoffDeliveryRow.tenant,
        HandoffDeliveryRow.user_id,
    )
    with store_errors("re-encrypting handoff documents"):
        async with write_engine(engine).begin() as conn:
            changes = [
                {
                    "row": row.id,
                    "body": sealers.for_tenant(row.tenant).reseal(
                        row.body, user=row.user_id, column=HANDOFF_BODY
                    ),
                }
                for row in (await conn.execute(rows)).all()
                if cipher.needs_rotation(row.body)
            ]
            if changes:
                await conn.execute(
                    update(HandoffDeliveryRow)
                    .where(HandoffDeliveryRow.id == bindparam("row"))
                    .values(body=bindparam("body")),
                    changes,
                )
    return len(changes)


def retention_sweeper(
    engine: AsyncEngine, *, keep_for: float, interval: float = 3600.0
) -> Periodic:
    """Purges rows older than `keep_for` seconds every `interval` seconds, while entered.

    Every worker may run one: purges are idempotent. A failed purge is logged
    and tried again at the next interval.
    """
    if keep_for <= 0:
        raise ValueError("keep_for must be positive")

    async def sweep() -> PurgeResult:
        result = await purge_before(engine, time.time() - keep_for)
        _log.info("retention.purged", deleted=result.deleted, users_rebuilt=result.users_rebuilt)
        return result

    return Periodic(sweep, interval=interval, name="retention", immediately=True)
