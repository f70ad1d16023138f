"""The running mood totals: added to as turns are written, rebuilt after a purge.

Each batch adds its new turns to `UserMoodRow`, `SessionMoodRow` and
`UserLabelRow` with ``INSERT ... ON CONFLICT DO UPDATE SET x = x + excluded.x``,
which is atomic on both databases, so workers writing the same user's turns
at once cannot lose an update. Only turns the batch actually inserted count,
so a retried batch never counts a turn twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Executable, case, delete, func, insert, select
from sqlalchemy.engine import Connection

from agent.emotion.labels import EKMAN_OF
from memory.records import TurnRecord
from memory.sql.engine import upsert_adding
from memory.sql.models import (
    MOOD_GROUPS,
    EmotionRow,
    SessionMoodRow,
    TurnRow,
    UserLabelRow,
    UserMoodRow,
)

__all__ = ["add_turns", "rebuild_statements"]

_SUMS = ("turns", "valence_sum", "arousal_sum", *MOOD_GROUPS)


@dataclass(slots=True)
class _Totals:
    turns: int = 0
    valence_sum: float = 0.0
    arousal_sum: float = 0.0
    groups: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MOOD_GROUPS, 0))
    first_at: float = float("inf")
    last_at: float = float("-inf")

    def add(self, record: TurnRecord) -> None:
        self.turns += 1
        self.valence_sum += record.emotion.valence
        self.arousal_sum += record.emotion.arousal
        self.groups[EKMAN_OF.get(record.emotion.dominant, "neutral")] += 1
        self.first_at = min(self.first_at, record.created_at)
        self.last_at = max(self.last_at, record.created_at)

    def row(self) -> dict[str, Any]:
        return {
            "turns": self.turns,
            "valence_sum": self.valence_sum,
            "arousal_sum": self.arousal_sum,
            **self.groups,
            "first_at": self.first_at,
            "last_at": self.last_at,
        }


def add_turns(
    conn: Connection,
    turns: Iterable[tuple[int, TurnRecord]],
) -> None:
    """Add freshly inserted turns, as (user's row id, record), to the totals."""
    users: dict[int, _Totals] = {}
    sessions: dict[str, tuple[int, _Totals]] = {}
    labels: dict[tuple[int, str], int] = {}
    for user_id, record in turns:
        users.setdefault(user_id, _Totals()).add(record)
        sessions.setdefault(record.session_id, (user_id, _Totals()))[1].add(record)
        key = (user_id, record.emotion.dominant)
        labels[key] = labels.get(key, 0) + 1
    if not users:
        return
    _add(conn, UserMoodRow.__table__, ("user_id",), [
        {"user_id": user_id, **totals.row()} for user_id, totals in users.items()
    ])  # fmt: skip
    _add(conn, SessionMoodRow.__table__, ("session_id",), [
        {"session_id": sid, "user_id": user_id, **totals.row()}
        for sid, (user_id, totals) in sessions.items()
    ])  # fmt: skip
    conn.execute(
        upsert_adding(conn, UserLabelRow.__table__, conflict=("user_id", "label"), add=("count",)),
        [{"user_id": u, "label": label, "count": n} for (u, label), n in labels.items()],
    )


def _add(
    conn: Connection,
    table: Any,
    conflict: Sequence[str],
    rows: list[dict[str, Any]],
) -> None:
    statement = upsert_adding(
        conn, table, conflict=conflict, add=_SUMS, least=("first_at",), greatest=("last_at",)
    )
    conn.execute(statement, rows)


def rebuild_statements(user_ids: Sequence[int] | None = None) -> list[Executable]:
    """Statements that recompute these users' totals (all users' with None) from their turns.

    Statements, not a coroutine, so a migration's synchronous connection can
    run them too. After a purge the totals must describe only what is stored.
    """
    statements: list[Executable] = []
    for table in (UserMoodRow, SessionMoodRow, UserLabelRow):
        cleared = delete(table)
        if user_ids is not None:
            cleared = cleared.where(table.user_id.in_(user_ids))
        statements.append(cleared)
    joined = TurnRow.__table__.join(EmotionRow.__table__, EmotionRow.turn_id == TurnRow.id)
    scope = [] if user_ids is None else [TurnRow.user_id.in_(user_ids)]
    statements.append(
        insert(UserMoodRow).from_select(
            ["user_id", *_SUMS, "first_at", "last_at"],
            select(TurnRow.user_id, *_aggregates())
            .select_from(joined)
            .where(*scope)
            .group_by(TurnRow.user_id),
        )
    )
    statements.append(
        insert(SessionMoodRow).from_select(
            ["session_id", "user_id", *_SUMS, "first_at", "last_at"],
            select(TurnRow.session_id, func.min(TurnRow.user_id), *_aggregates())
            .select_from(joined)
            .where(*scope)
            .group_by(TurnRow.session_id),
        )
    )
    statements.append(
        insert(UserLabelRow).from_select(
            ["user_id", "label", "count"],
            select(TurnRow.user_id, EmotionRow.dominant, func.count())
            .select_from(joined)
            .where(*scope)
            .group_by(TurnRow.user_id, EmotionRow.dominant),
        )
    )
    return statements


def _aggregates() -> list[Any]:
    """The `_SUMS` columns, then first_at and last_at, as SQL aggregates over turns."""
    return [
        func.count(),
        func.sum(EmotionRow.valence),
        func.sum(EmotionRow.arousal),
        *(_group_count(group) for group in MOOD_GROUPS),
        func.min(TurnRow.created_at),
        func.max(TurnRow.created_at),
    ]


def _group_count(group: str) -> Any:
    if group == "neutral":  # unknown labels count as neutral, as `_Totals.add` counts them
        others = [label for label, of in EKMAN_OF.items() if of != "neutral"]
        return func.sum(case((EmotionRow.dominant.in_(others), 0), else_=1))
    members = [label for label, of in EKMAN_OF.items() if of == group]
    return func.sum(case((EmotionRow.dominant.in_(members), 1), else_=0))
