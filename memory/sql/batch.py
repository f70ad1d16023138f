"""One batch of records, written in one transaction with bulk inserts.

A batch may mix tenants: each record names its own. Users are upserted per
(tenant, user id) and sessions per id (``ON CONFLICT DO NOTHING``); a turn
already stored under its (session, seq) is kept and the duplicate skipped, so a
retried or re-run turn never fails a batch.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import TypeVar

import structlog
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert, ReturningInsert

from memory.records import FeedbackRecord, TurnRecord
from memory.sealing import TenantSealers
from memory.sql.engine import insert_ignoring, store_errors
from memory.sql.models import (
    DecisionRow,
    EmotionRow,
    FeedbackRow,
    SessionRow,
    TurnRow,
    UserRow,
)
from memory.sql.moods import add_turns
from memory.sql.units import UnitRunner

__all__ = ["write_batch"]

_log = structlog.get_logger(__name__)

_Users = dict[tuple[str, str], int]  # (tenant, user id) -> the user's row id

# Built once: building a statement costs about as much as running it, every batch.
_USER_IDS = select(UserRow.external_id, UserRow.id).where(
    UserRow.tenant == bindparam("tenant"),
    UserRow.external_id.in_(bindparam("users", expanding=True)),
)
_SESSION_LAST_AT = (
    update(SessionRow)
    .where(SessionRow.id == bindparam("sid"), SessionRow.last_at < bindparam("last"))
    .values(last_at=bindparam("last"))
)
_SESSION_OWNERS = select(SessionRow.id, SessionRow.user_id).where(
    SessionRow.id.in_(bindparam("ids", expanding=True))
)
_INSERT_FEEDBACK = insert(FeedbackRow)
_INSERT_EMOTIONS = insert(EmotionRow)
_INSERT_DECISIONS = insert(DecisionRow)


async def write_batch(
    units: UnitRunner,
    batch: Sequence[TurnRecord | FeedbackRecord],
    *,
    sealers: TenantSealers,
) -> None:
    """Write `batch` in one transaction, one unit of `units` (a writer's: `open_units`
    with `write`). Raises `StoreError`; safe to cancel (`UnitRunner.run`).

    Message text is stored as its tenant's sealer seals it: redacted, and
    encrypted if configured.
    """
    with store_errors("writing a batch"):
        await units.run(lambda conn: _write(conn, batch, sealers))


def _write(
    conn: Connection, batch: Sequence[TurnRecord | FeedbackRecord], sealers: TenantSealers
) -> None:
    turns = _unique_turns(r for r in batch if isinstance(r, TurnRecord))
    feedback = [r for r in batch if isinstance(r, FeedbackRecord)]
    users = _upsert_users(conn, batch)
    owners = _upsert_sessions(conn, batch, users)
    turns, feedback = _owned(turns, users, owners), _owned(feedback, users, owners)
    if turns:
        _insert_turns(conn, turns, users, sealers)
    if feedback:
        conn.execute(
            _INSERT_FEEDBACK,
            [
                {
                    "session_id": r.session_id,
                    "user_id": users[r.tenant, r.user_id],
                    "turn_id": r.turn_id,
                    "score": r.score,
                    "created_at": r.created_at,
                }
                for r in feedback
            ],
        )


def _unique_turns(records: Iterable[TurnRecord]) -> list[TurnRecord]:
    seen: dict[tuple[str, int], TurnRecord] = {}
    for record in records:
        seen.setdefault((record.session_id, record.seq), record)
    return list(seen.values())


def _upsert_users(
    conn: Connection,
    batch: Sequence[TurnRecord | FeedbackRecord],
) -> _Users:
    first_seen: dict[tuple[str, str], float] = {}
    for record in batch:
        key = (record.tenant, record.user_id)
        at = first_seen.get(key)
        first_seen[key] = record.created_at if at is None else min(at, record.created_at)
    conn.execute(
        insert_ignoring(conn, UserRow, conflict=("tenant", "external_id")),
        [
            {"tenant": tenant, "external_id": user, "created_at": at}
            for (tenant, user), at in first_seen.items()
        ],
    )
    by_tenant: dict[str, list[str]] = {}
    for tenant, user in first_seen:
        by_tenant.setdefault(tenant, []).append(user)
    users: _Users = {}
    for tenant, external_ids in by_tenant.items():
        rows = conn.execute(_USER_IDS, {"tenant": tenant, "users": external_ids})
        users.update(((tenant, external), user_id) for external, user_id in rows)
    return users


def _upsert_sessions(
    conn: Connection,
    batch: Sequence[TurnRecord | FeedbackRecord],
    users: _Users,
) -> dict[str, int]:
    """Create or extend the batch's sessions; returns each one's owner (a user row id)."""
    spans: dict[str, tuple[int, float, float]] = {}
    for record in batch:
        user_id, start, last = spans.get(
            record.session_id,
            (users[record.tenant, record.user_id], record.created_at, record.created_at),
        )
        spans[record.session_id] = (
            user_id,
            min(start, record.created_at),
            max(last, record.created_at),
        )
    conn.execute(
        insert_ignoring(conn, SessionRow, conflict=("id",)),
        [
            {"id": sid, "user_id": user_id, "started_at": start, "last_at": last}
            for sid, (user_id, start, last) in spans.items()
        ],
    )
    # Existing sessions: move last_at forward (a no-op for the ones just inserted).
    conn.execute(
        _SESSION_LAST_AT, [{"sid": sid, "last": last} for sid, (_, _, last) in spans.items()]
    )
    rows = conn.execute(_SESSION_OWNERS, {"ids": list(spans)})
    return {sid: user_id for sid, user_id in rows}


_Record = TypeVar("_Record", TurnRecord, FeedbackRecord)


def _owned(records: list[_Record], users: _Users, owners: dict[str, int]) -> list[_Record]:
    """The records whose session belongs to their user; the others are logged and dropped.

    Session ids are random and made by the gateway, so a mismatch means a
    forged or corrupted record: storing it would put one user's words into
    another user's session, or another tenant's.
    """
    kept = [r for r in records if owners.get(r.session_id) == users[r.tenant, r.user_id]]
    if len(kept) < len(records):
        _log.error("store.foreign_session", dropped=len(records) - len(kept))
    return kept


def _sealed(record: TurnRecord, sealers: TenantSealers) -> dict[str, str]:
    """The turn's text and reply as stored, sealed for its tenant and user."""
    sealer = sealers.for_tenant(record.tenant)
    return {
        "text": sealer.seal(record.text, user=record.user_id, column="turns.text"),
        "reply": sealer.seal(record.reply, user=record.user_id, column="turns.reply"),
    }


def _insert_turns(
    conn: Connection,
    turns: list[TurnRecord],
    users: _Users,
    sealers: TenantSealers,
) -> None:
    inserted = conn.execute(
        _returning_ids(insert_ignoring(conn, TurnRow, conflict=("session_id", "seq"))),
        [
            {
                "session_id": r.session_id,
                "user_id": users[r.tenant, r.user_id],
                "turn_id": r.turn_id,
                "seq": r.seq,
                **_sealed(r, sealers),
                "interrupted": r.interrupted,
                "generator": r.generator,
                "created_at": r.created_at,
                "flow_state": r.flow_state,
            }
            for r in turns
        ],
    )
    ids = {(sid, seq): turn_id for turn_id, sid, seq in inserted}
    fresh = [(ids[(r.session_id, r.seq)], r) for r in turns if (r.session_id, r.seq) in ids]
    if not fresh:
        return
    add_turns(conn, [(users[r.tenant, r.user_id], r) for _, r in fresh])
    conn.execute(
        _INSERT_EMOTIONS,
        [
            {
                "turn_id": turn_id,
                "scores": dict(r.emotion.scores),
                "dominant": r.emotion.dominant,
                "valence": r.emotion.valence,
                "arousal": r.emotion.arousal,
                "intensity": r.emotion.intensity,
                "model": r.emotion.model,
            }
            for turn_id, r in fresh
        ],
    )
    conn.execute(
        _INSERT_DECISIONS,
        [
            {
                "turn_id": turn_id,
                "action": r.decision.action.value,
                "strategy": r.decision.strategy.value,
                "tone": r.decision.tone.value,
                "confidence": r.decision.confidence,
                "policy": r.decision.policy,
                "reasons": list(r.decision.reasons),
                "propensity": r.decision.propensity,
                "abstained": list(r.decision.abstained),
                "features": None if r.features is None else list(r.features),
            }
            for turn_id, r in fresh
        ],
    )


@functools.lru_cache(maxsize=2)  # one a dialect
def _returning_ids(statement: Insert) -> ReturningInsert[int, str, int]:
    return statement.returning(TurnRow.id, TurnRow.session_id, TurnRow.seq)
