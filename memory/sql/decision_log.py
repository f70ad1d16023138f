"""Logged decisions with their outcomes, for off-policy evaluation.

A learned decision is usable when it was logged with its propensity and the
context features it was made on. Its outcomes are the user's feedback on the
turn (the latest score, if any) and the valence of the user's next turn in
the same session (if there was one).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, and_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import aliased

from memory.sql.engine import store_errors
from memory.sql.models import DecisionRow, EmotionRow, FeedbackRow, TurnRow, UserRow

__all__ = ["LoggedOutcome", "logged_outcomes"]


@dataclass(frozen=True, slots=True)
class LoggedOutcome:
    features: tuple[float, ...]
    strategy: str
    propensity: float
    valence: float
    next_valence: float | None
    feedback: int | None


async def logged_outcomes(engine: AsyncEngine, *, tenant: str) -> list[LoggedOutcome]:
    """Every decision of `tenant` logged with a propensity and features, oldest first."""
    following = aliased(TurnRow)
    following_emotion = aliased(EmotionRow)
    latest_feedback = (
        select(FeedbackRow.score)
        .where(FeedbackRow.session_id == TurnRow.session_id, FeedbackRow.turn_id == TurnRow.turn_id)
        .order_by(FeedbackRow.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(
            DecisionRow.features,
            DecisionRow.strategy,
            DecisionRow.propensity,
            EmotionRow.valence,
            following_emotion.valence.label("next_valence"),
            latest_feedback.label("feedback"),
        )
        .select_from(TurnRow)
        .join(UserRow, UserRow.id == TurnRow.user_id)
        .join(DecisionRow, DecisionRow.turn_id == TurnRow.id)
        .join(EmotionRow, EmotionRow.turn_id == TurnRow.id)
        .outerjoin(
            following,
            and_(following.session_id == TurnRow.session_id, following.seq == TurnRow.seq + 1),
        )
        .outerjoin(following_emotion, following_emotion.turn_id == following.id)
        .where(
            UserRow.tenant == tenant,
            DecisionRow.propensity.is_not(None),
            DecisionRow.features.is_not(None),
        )
        .order_by(TurnRow.created_at, TurnRow.id)
    )
    with store_errors("reading logged decisions"):
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    return list(_outcomes(rows))


def _outcomes(rows: Sequence[Row[Any]]) -> Iterator[LoggedOutcome]:
    for row in rows:
        yield LoggedOutcome(
            features=tuple(float(v) for v in row.features),
            strategy=str(row.strategy),
            propensity=float(row.propensity),
            valence=float(row.valence),
            next_valence=None if row.next_valence is None else float(row.next_valence),
            feedback=None if row.feedback is None else int(row.feedback),
        )
