"""A user's timeline across sessions, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from memory.sql import SqlConversationStore
from memory.sql.timeline import user_timeline
from tests.support.records import turn


async def test_sessions_and_readings_oldest_first(sql_engine: AsyncEngine) -> None:
    async with SqlConversationStore(sql_engine) as store:
        await store.record_turn(turn("s1", 1, user_id="erin", created_at=10.0, dominant="anger"))
        await store.record_turn(turn("s1", 2, user_id="erin", created_at=11.0, dominant="anger"))
        await store.record_turn(turn("s2", 1, user_id="erin", created_at=20.0, dominant="joy"))
        await store.record_turn(
            turn("s3", 1, user_id="erin", created_at=30.0, dominant="joy", tenant="other")
        )
        await store.flush()
    timeline = await user_timeline(sql_engine, "erin", tenant="default")
    assert timeline is not None
    assert [(s.session_id, s.turns, s.mood) for s in timeline.sessions] == [
        ("s1", 2, "anger"),
        ("s2", 1, "joy"),
    ]
    assert [(p.session_id, p.seq, p.dominant) for p in timeline.points] == [
        ("s1", 1, "anger"),
        ("s1", 2, "anger"),
        ("s2", 1, "joy"),
    ]
    assert await user_timeline(sql_engine, "nobody", tenant="default") is None


async def test_the_newest_turns_when_there_are_many(sql_engine: AsyncEngine) -> None:
    async with SqlConversationStore(sql_engine) as store:
        for seq in range(1, 8):
            await store.record_turn(turn("s1", seq, user_id="finn", created_at=float(seq)))
        await store.flush()
    timeline = await user_timeline(sql_engine, "finn", tenant="default", limit=3)
    assert timeline is not None
    assert [p.seq for p in timeline.points] == [5, 6, 7]
