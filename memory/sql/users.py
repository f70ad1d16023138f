"""What a privacy officer asks of the store: export a user, forget a user, purge old rows.

Each runs in one transaction and touches one tenant's rows only (purge: every
tenant's, by age). Forgetting deletes the user's row and lets the foreign keys
cascade to everything hanging off it (sessions, turns, readings, decisions,
feedback, mood totals); the turn ledger, keyed by session, and the handoff
documents kept for the help desk, keyed by tenant and user id, are cleared by
hand. A purge deletes turns and feedback older than the cutoff, handoff
documents delivered or given up on before it, then the sessions and users left
with nothing, and rebuilds the mood totals of the users it touched so that no
figure outlives the rows it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from memory.sealing import MessageSealer
from memory.sql.engine import store_errors, write_engine
from memory.sql.handoffs import HANDOFF_BODY
from memory.sql.models import (
    DecisionRow,
    EmotionRow,
    FeedbackRow,
    HandoffDeliveryRow,
    LedgerRow,
    SessionMoodRow,
    SessionRow,
    TurnRow,
    UserLabelRow,
    UserMoodRow,
    UserRow,
)
from memory.sql.moods import rebuild_statements

__all__ = ["PurgeResult", "export_user", "forget_user", "purge_before"]


async def export_user(
    engine: AsyncEngine, user: str, *, sealer: MessageSealer, tenant: str
) -> dict[str, Any] | None:
    """Everything held about `user` of `tenant` as JSON-ready data; None if nothing is."""
    with store_errors("exporting a user"):
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(UserRow).where(UserRow.tenant == tenant, UserRow.external_id == user)
                )
            ).one_or_none()
            if row is None:
                return None
            user_id = row.id
            sessions = await _rows(conn, select(SessionRow).where(SessionRow.user_id == user_id))
            turns = await _rows(
                conn,
                select(TurnRow).where(TurnRow.user_id == user_id).order_by(TurnRow.created_at),
            )
            readings = await _by_turn(conn, EmotionRow, user_id)
            decisions = await _by_turn(conn, DecisionRow, user_id)
            feedback = await _rows(conn, select(FeedbackRow).where(FeedbackRow.user_id == user_id))
            moods = await _rows(conn, select(UserMoodRow).where(UserMoodRow.user_id == user_id))
            session_moods = await _rows(
                conn, select(SessionMoodRow).where(SessionMoodRow.user_id == user_id)
            )
            labels = await _rows(conn, select(UserLabelRow).where(UserLabelRow.user_id == user_id))
            handoffs = await _rows(
                conn,
                select(
                    HandoffDeliveryRow.delivery_id,
                    HandoffDeliveryRow.session_id,
                    HandoffDeliveryRow.trigger,
                    HandoffDeliveryRow.status,
                    HandoffDeliveryRow.created_at,
                    HandoffDeliveryRow.body,
                ).where(HandoffDeliveryRow.tenant == tenant, HandoffDeliveryRow.user_id == user),
            )
            pending = await _rows(
                conn,
                select(
                    LedgerRow.session_id,
                    LedgerRow.seq,
                    LedgerRow.done,
                    LedgerRow.first_seen,
                    LedgerRow.payload,
                ).where(LedgerRow.session_id.in_([s["id"] for s in sessions])),
            )
    for entry in pending:  # a turn not yet answered: the event as received
        entry["payload"] = bytes(entry["payload"]).decode("utf-8", "replace")
    for handoff in handoffs:  # the document as the help desk got it
        handoff["body"] = sealer.open(handoff["body"], user=user, column=HANDOFF_BODY)
    for turn in turns:
        turn["text"] = sealer.open(turn["text"], user=user, column="turns.text")
        turn["reply"] = sealer.open(turn["reply"], user=user, column="turns.reply")
        turn["emotion"] = readings.get(turn["id"])
        turn["decision"] = decisions.get(turn["id"])
    return {
        "tenant": tenant,
        "user": user,
        "created_at": row.created_at,
        "sessions": sessions,
        "turns": turns,
        "feedback": feedback,
        "mood_totals": moods[0] if moods else None,
        "session_moods": session_moods,
        "label_counts": {label["label"]: label["count"] for label in labels},
        "ledger": pending,
        "handoffs": handoffs,
    }


async def forget_user(engine: AsyncEngine, user: str, *, tenant: str) -> dict[str, int]:
    """Erase every row about `user` of `tenant`; returns the rows deleted per table."""
    with store_errors("forgetting a user"):
        async with write_engine(engine).begin() as conn:
            user_id = (
                await conn.execute(
                    select(UserRow.id).where(UserRow.tenant == tenant, UserRow.external_id == user)
                )
            ).scalar_one_or_none()
            handoffs = await conn.execute(
                delete(HandoffDeliveryRow).where(
                    HandoffDeliveryRow.tenant == tenant, HandoffDeliveryRow.user_id == user
                )
            )
            if user_id is None:  # handoffs may be recorded before the turns that caused them
                return (
                    {HandoffDeliveryRow.__tablename__: handoffs.rowcount}
                    if handoffs.rowcount
                    else {}
                )
            counts = {
                table.__tablename__: await _count(conn, table, table.user_id == user_id)
                for table in (
                    SessionRow,
                    TurnRow,
                    FeedbackRow,
                    UserMoodRow,
                    UserLabelRow,
                    SessionMoodRow,
                )
            }
            mine = select(SessionRow.id).where(SessionRow.user_id == user_id)
            ledger = await conn.execute(delete(LedgerRow).where(LedgerRow.session_id.in_(mine)))
            counts[LedgerRow.__tablename__] = ledger.rowcount
            counts[HandoffDeliveryRow.__tablename__] = handoffs.rowcount
            await conn.execute(delete(UserRow).where(UserRow.id == user_id))
            counts[UserRow.__tablename__] = 1
    return counts


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """Rows deleted per table, and how many users' totals were rebuilt."""

    deleted: dict[str, int]
    users_rebuilt: int


async def purge_before(engine: AsyncEngine, cutoff: float) -> PurgeResult:
    """Delete every row older than `cutoff` (epoch seconds), in every tenant."""
    old_turns = TurnRow.created_at < cutoff
    with store_errors("purging old rows"):
        async with write_engine(engine).begin() as conn:
            touched = list(
                (await conn.execute(select(TurnRow.user_id).where(old_turns).distinct())).scalars()
            )
            deleted: dict[str, int] = {}
            for table, condition in (
                (TurnRow, old_turns),
                (FeedbackRow, FeedbackRow.created_at < cutoff),
                (LedgerRow, LedgerRow.done.is_(True) & (LedgerRow.first_seen < cutoff)),
                (
                    HandoffDeliveryRow,
                    (HandoffDeliveryRow.status != "pending")
                    & (HandoffDeliveryRow.created_at < cutoff),
                ),
                (
                    SessionRow,
                    (SessionRow.last_at < cutoff)
                    & ~exists().where(TurnRow.session_id == SessionRow.id)
                    & ~exists().where(LedgerRow.session_id == SessionRow.id),
                ),
                (
                    UserRow,
                    (UserRow.created_at < cutoff)
                    & ~exists().where(SessionRow.user_id == UserRow.id),
                ),
            ):
                result = await conn.execute(delete(table).where(condition))
                deleted[table.__tablename__] = result.rowcount
            for statement in rebuild_statements(touched):
                await conn.execute(statement)
    return PurgeResult(deleted=deleted, users_rebuilt=len(touched))


async def _rows(conn: AsyncConnection, query: Any) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in (await conn.execute(query)).all()]


async def _by_turn(conn: AsyncConnection, table: Any, user_id: int) -> dict[int, Any]:
    """A table hanging off turns, one row per turn of the user, by turn id."""
    query = (
        select(table).join(TurnRow, TurnRow.id == table.turn_id).where(TurnRow.user_id == user_id)
    )
    rows = await _rows(conn, query)
    return {row.pop("turn_id"): row for row in rows}


async def _count(conn: AsyncConnection, table: Any, condition: Any) -> int:
    return int(
        (await conn.execute(select(func.count()).select_from(table).where(condition))).scalar_one()
    )
