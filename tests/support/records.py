"""Records to store, built the same way by every SQL test."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.values import Action, Decision, EmotionReading, Strategy, Tone
from memory.records import TurnRecord

__all__ = ["LABELS", "count", "reading", "turn"]

LABELS = ("joy", "sadness", "anger", "neutral")


def reading(valence: float, dominant: str = "neutral") -> EmotionReading:
    scores = dict.fromkeys(LABELS, 0.1)
    scores[dominant] = 0.7
    return EmotionReading(
        scores=scores,
        dominant=dominant,
        valence=valence,
        arousal=0.4,
        intensity=0.6,
        model="test-model",
    )


def turn(
    session_id: str,
    seq: int,
    *,
    user_id: str = "alice",
    valence: float = 0.0,
    dominant: str = "neutral",
    created_at: float | None = None,
    strategy: Strategy = Strategy.INFORM,
    tenant: str = "default",
) -> TurnRecord:
    return TurnRecord(
        session_id=session_id,
        user_id=user_id,
        turn_id=f"{session_id}-{seq}",
        seq=seq,
        text=f"message {seq}",
        reply=f"reply {seq}",
        interrupted=False,
        generator="template",
        emotion=reading(valence, dominant),
        decision=Decision(
            action=Action.REPLY,
            strategy=strategy,
            tone=Tone.CALM,
            confidence=0.8,
            policy="rules",
            reasons=("because",),
            propensity=0.25,
        ),
        created_at=1_000.0 + seq if created_at is None else created_at,
        tenant=tenant,
    )


async def count(engine: AsyncEngine, model: type[object]) -> int:
    async with engine.connect() as conn:
        value = (await conn.execute(select(func.count()).select_from(model))).scalar_one()
    return int(value)
