"""A user's emotional history across sessions, for staff: each session's mood and every
turn's reading, oldest first. Read-only: two indexed queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncEngine

from memory.sql.engine import store_errors
from memory.sql.models import (
    MOOD_GROUPS,
    EmotionRow,
    SessionMoodRow,
    SessionRow,
    TurnRow,
    UserRow,
)
from memory.sql.store import session_mood

__all__ = ["TimelinePoint", "TimelineSession", "UserTimeline", "user_timeline"]


@dataclass(frozen=True, slots=True)
class TimelineSession:
    session_id: str
    started_at: float
    last_at: float
    turns: int
    mood: str
    mean_valence: float


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    session_id: str
    seq: int
    at: float
    dominant: str
    valence: float
    arousal: float


@dataclass(frozen=True, slots=True)
class UserTimeline:
    user_id: str
    tenant: str
    sessions: tuple[TimelineSession, ...]
    points: tuple[TimelinePoint, ...]


async def user_timeline(
    engine: AsyncEngine, user_id: str, *, tenant: str, limit: int = 500
) -> UserTimeline | None:
    """The user's sessions and their last `limit` turns' readings; None for an unknown user.

    Raises `StoreError` when the database fails.
    """
    with store_errors("reading a user's timeline"):
        async with engine.connect() as conn:
            user = await conn.scalar(
                select(UserRow.id).where(UserRow.tenant == tenant, UserRow.external_id == user_id)
            )
            if user is None:
                return None
            sessions = await conn.execute(
                select(
                    SessionRow.started_at,
                    SessionMoodRow.session_id,
                    SessionMoodRow.turns,
                    SessionMoodRow.valence_sum,
                    SessionMoodRow.last_at,
                    *(getattr(SessionMoodRow, group) for group in MOOD_GROUPS),
                )
                .join(SessionMoodRow, SessionMoodRow.session_id == SessionRow.id)
                .where(SessionRow.user_id == user)
                .order_by(SessionRow.started_at)
            )
            turns = await conn.execute(
                select(
                    TurnRow.session_id,
                    TurnRow.seq,
                    TurnRow.created_at,
                    EmotionRow.dominant,
                    EmotionRow.valence,
                    EmotionRow.arousal,
                )
                .join(EmotionRow, EmotionRow.turn_id == TurnRow.id)
                .where(TurnRow.user_id == user)
                .order_by(TurnRow.created_at.desc())
                .limit(limit)
            )
            session_rows, turn_rows = sessions.all(), turns.all()
    return UserTimeline(
        user_id=user_id,
        tenant=tenant,
        sessions=tuple(_session(row) for row in session_rows),
        points=tuple(
            TimelinePoint(
                session_id=row.session_id,
                seq=row.seq,
                at=row.created_at,
                dominant=row.dominant,
                valence=row.valence,
                arousal=row.arousal,
            )
            for row in reversed(turn_rows)
        ),
    )


def _session(row: Row[Any]) -> TimelineSession:
    mood = session_mood(row)
    return TimelineSession(
        session_id=row.session_id,
        started_at=row.started_at,
        last_at=row.last_at,
        turns=mood.turns,
        mood=mood.mood,
        mean_valence=mood.mean_valence,
    )
