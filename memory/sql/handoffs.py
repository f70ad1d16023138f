"""`SqlHandoffOutbox`: the handoff outbox in the `handoff_deliveries` table.

A claim is one write transaction: read the due rows, then move each one's
`next_attempt_at` a lease ahead (and count the attempt) with an UPDATE that
holds only while the row is still pending, due and at the attempt count just
read. Two processes claiming at once both read the row, but only one UPDATE
matches it (PostgreSQL re-checks the condition after the first commits; SQLite
runs the transactions one after the other under ``BEGIN IMMEDIATE``), and the
other skips it, so no delivery is posted twice at the same time.
"""

from __future__ import annotations

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.errors import StoreError
from memory.crypto import TextCipher
from memory.handoffs import (
    ClaimedDelivery,
    DeliveryRecord,
    DeliveryStatus,
    NewDelivery,
)
from memory.sealing import MessageSealer
from memory.sql.engine import insert_ignoring, store_errors, write_engine
from memory.sql.models import HandoffDeliveryRow

__all__ = ["HANDOFF_BODY", "SqlHandoffOutbox"]

_log = structlog.get_logger(__name__)

HANDOFF_BODY = "handoff_deliveries.body"
_MAX_ERROR = 500  # the column's length
_Row = HandoffDeliveryRow


class SqlHandoffOutbox:
    """A `HandoffOutbox` on an engine from `open_engine`.

    With a `cipher`, bodies are stored encrypted, bound to their tenant and user
    (redacted text only ever goes in: the document builder redacts it). Every
    method raises `StoreError` on a database failure and is safe to cancel: the
    open transaction rolls back.
    """

    def __init__(self, engine: AsyncEngine, *, cipher: TextCipher | None = None) -> None:
        self._engine = engine
        self._write = write_engine(engine)
        self._cipher = cipher

    async def record(self, delivery: NewDelivery, *, now: float) -> bool:
        sealer = MessageSealer(tenant=delivery.tenant, cipher=self._cipher)
        body = delivery.body
        if self._cipher is not None:
            body = self._cipher.encrypt(
                body, associated=sealer.associated(delivery.user_id, HANDOFF_BODY)
            )
        values = {
            "delivery_id": delivery.delivery_id,
            "tenant": delivery.tenant,
            "session_id": delivery.session_id,
            "user_id": delivery.user_id,
            "trigger": delivery.trigger,
            "body": body,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        with store_errors("recording a handoff delivery"):
            async with self._write.begin() as conn:
                result = await conn.execute(
                    insert_ignoring(self._engine, _Row, conflict=("delivery_id",)), values
                )
        return bool(result.rowcount)

    async def claim_due(self, *, now: float, limit: int, lease: float) -> list[ClaimedDelivery]:
        """A body that no configured key opens fails its delivery here, with the reason,
        instead of coming due again for ever."""
        if limit < 1:
            return []
        due = (
            select(_Row)
            .where(_Row.status == DeliveryStatus.PENDING.value, _Row.next_attempt_at <= now)
            .order_by(_Row.next_attempt_at, _Row.id)
            .limit(limit)
        )
        claimed: list[ClaimedDelivery] = []
        with store_errors("claiming handoff deliveries"):
            async with self._write.begin() as conn:
                # Lock rows in id order, so two claimers cannot wait on each other.
                rows = sorted((await conn.execute(due)).all(), key=lambda row: row.id)
                for row in rows:
                    taken = await conn.execute(
                        update(_Row)
                        .where(
                            _Row.id == row.id,
                            _Row.status == DeliveryStatus.PENDING.value,
                            _Row.next_attempt_at <= now,
                            _Row.attempts == row.attempts,
                        )
                        .values(attempts=row.attempts + 1, next_attempt_at=now + lease)
                    )
                    if taken.rowcount != 1:
                        continue
                    sealer = MessageSealer(tenant=row.tenant, cipher=self._cipher)
                    try:
                        body = sealer.open(row.body, user=row.user_id, column=HANDOFF_BODY)
                    except StoreError as error:
                        await conn.execute(
                            update(_Row)
                            .where(_Row.id == row.id)
                            .values(
                                status=DeliveryStatus.FAILED.value,
                                last_error=str(error)[:_MAX_ERROR],
                            )
                        )
                        _log.error(
                            "handoff.unreadable",
                            delivery_id=row.delivery_id,
                            session_id=row.session_id,
                            error=str(error),
                        )
                        continue
                    claimed.append(
                        ClaimedDelivery(
                            delivery_id=row.delivery_id,
                            tenant=row.tenant,
                            session_id=row.session_id,
                            body=body,
                            attempt=row.attempts + 1,
                        )
                    )
        return claimed

    async def delivered(self, claim: ClaimedDelivery, *, status: int, now: float) -> bool:
        # Not fenced by the attempt: whichever claim got through, the receiver has it.
        return await self._mark(
            "marking a handoff delivered",
            claim,
            fenced=False,
            status=DeliveryStatus.DELIVERED.value,
            last_status=status,
            last_error=None,
            delivered_at=now,
        )

    async def retry(
        self, claim: ClaimedDelivery, *, at: float, status: int | None, error: str
    ) -> bool:
        return await self._mark(
            "rescheduling a handoff delivery",
            claim,
            fenced=True,
            next_attempt_at=at,
            last_status=status,
            last_error=error[:_MAX_ERROR],
        )

    async def fail(self, claim: ClaimedDelivery, *, status: int | None, error: str) -> bool:
        return await self._mark(
            "failing a handoff delivery",
            claim,
            fenced=True,
            status=DeliveryStatus.FAILED.value,
            last_status=status,
            last_error=error[:_MAX_ERROR],
        )

    async def get(self, delivery_id: str) -> DeliveryRecord | None:
        query = select(
            _Row.delivery_id,
            _Row.tenant,
            _Row.session_id,
            _Row.user_id,
            _Row.trigger,
            _Row.status,
            _Row.attempts,
            _Row.next_attempt_at,
            _Row.last_status,
            _Row.last_error,
            _Row.created_at,
            _Row.delivered_at,
        ).where(_Row.delivery_id == delivery_id)
        with store_errors("reading a handoff delivery"):
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).one_or_none()
        if row is None:
            return None
        return DeliveryRecord(
            delivery_id=row.delivery_id,
            tenant=row.tenant,
            session_id=row.session_id,
            user_id=row.user_id,
            trigger=row.trigger,
            status=DeliveryStatus(row.status),
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_status=row.last_status,
            last_error=row.last_error,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
        )

    async def _mark(
        self, action: str, claim: ClaimedDelivery, *, fenced: bool, **values: object
    ) -> bool:
        statement = update(_Row).where(
            _Row.delivery_id == claim.delivery_id,
            _Row.status == DeliveryStatus.PENDING.value,
        )
        if fenced:
            statement = statement.where(_Row.attempts == claim.attempt)
        with store_errors(action):
            async with self._write.begin() as conn:
                result = await conn.execute(statement.values(**values))
        return bool(result.rowcount)
