"""The emotional history API on a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.values import Trend
from memory.sql import SqlConversationStore
from memory.sql.models import SessionMoodRow, UserLabelRow, UserMoodRow
from memory.sql.moods import rebuild_statements
from tests.support.records import turn

pytestmark = pytest.mark.integration


async def _totals(engine: AsyncEngine) -> list[list[tuple[object, ...]]]:
    tables = (UserMoodRow, SessionMoodRow, UserLabelRow)
    async with engine.connect() as conn:
        return [
            sorted(
                tuple(round(v, 9) if isinstance(v, float) else v for v in row)
                for row in (await conn.execute(select(table))).all()
            )
            for table in tables
        ]


async def test_running_totals_match_a_rebuild_from_the_turns(sql_engine: AsyncEngine) -> None:
    labels = ["anger", "joy", "neutral", "sadness", "anger", "fear", "surprise"]
    async with SqlConversationStore(sql_engine) as store:
        for seq, label in enumerate(labels, start=1):
            for session in ("s1", "s2"):
                await store.record_turn(turn(session, seq, dominant=label, valence=seq / 10))
            await store.record_turn(turn("b1", seq, user_id="bob", dominant=label))
        await store.record_turn(turn("s1", 3, dominant="joy"))  # a re-run turn counts once
        await store.flush()
    incremental = await _totals(sql_engine)
    async with sql_engine.begin() as conn:
        for statement in rebuild_statements():
            await conn.execute(statement)
    assert await _totals(sql_engine) == incremental
    assert incremental[0][0][1] == len(labels) * 2  # alice's turns


async def test_concurrent_writers_lose_no_update(sql_engine: AsyncEngine) -> None:
    stores = [SqlConversationStore(sql_engine) for _ in range(3)]

    async def write(index: int, store: SqlConversationStore) -> None:
        async with store:
            for seq in range(1, 41):
                await store.record_turn(turn(f"w{index}", seq, valence=0.5, dominant="joy"))
                if seq % 5 == 0:
                    await store.flush()

    await asyncio.gather(*(write(i, store) for i, store in enumerate(stores)))
    async with SqlConversationStore(sql_engine) as reader:
        summary = await reader.history("alice", now=5_000.0)
    assert (summary.turns, summary.sessions) == (120, 3)
    assert summary.mean_valence == pytest.approx(0.5)
    assert summary.frequent == ("joy",)


async def test_summary_cites_the_moods_of_earlier_sessions(sql_engine: AsyncEngine) -> None:
    async with SqlConversationStore(sql_engine) as store:
        calm = [turn("s0", seq, dominant="neutral", created_at=100.0 + seq) for seq in (1, 2)]
        angry_1 = [
            turn("s1", seq, dominant=label, valence=-0.6, created_at=1_000.0 + seq)
            for seq, label in enumerate(["anger", "anger", "neutral"], start=1)
        ]
        angry_2 = [
            turn("s2", seq, dominant="annoyance", valence=-0.4, created_at=2_000.0 + seq)
            for seq in (1, 2)
        ]
        for record in [*calm, *angry_1, *angry_2, turn("s3", 1, created_at=3_000.0)]:
            await store.record_turn(record)
        await store.flush()
        summary = await store.history("alice", now=3_001.0, session_id="s3")

    assert summary.returning
    assert (summary.sessions, summary.turns) == (4, 8)
    assert [(s.turns, s.mood, s.ended_at) for s in summary.past_sessions[:2]] == [
        (2, "anger", 2_002.0),
        (3, "anger", 1_003.0),
    ]
    assert [s.mean_valence for s in summary.past_sessions[:2]] == pytest.approx([-0.4, -0.6])
    assert summary.past_sessions[2].mood == "neutral"
    assert summary.mood_streak() == ("anger", 2)
    assert "frustrated in the last 2 sessions" in summary.describe()
    assert summary.frequent[0] == "neutral"  # 4 neutral turns, 2 anger, 2 annoyance
    assert summary.trajectory[-1] == 0.0  # this session's turn, the newest
    assert summary.trend is Trend.RECOVERING


async def test_a_first_session_is_not_returning(sql_engine: AsyncEngine) -> None:
    async with SqlConversationStore(sql_engine) as store:
        await store.record_turn(turn("s1", 1))
        await store.flush()
        summary = await store.history("alice", now=1_002.0, session_id="s1")
    assert not summary.returning
    assert summary.past_sessions == ()
    assert summary.describe() == "first-time user"
