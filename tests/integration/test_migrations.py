"""Alembic migrations on a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from memory.sql import (
    SqlConversationStore,
    downgrade_schema,
    open_engine,
    schema_revision,
    upgrade_schema,
)
from memory.sql.models import Base, SessionRow, TurnRow, UserMoodRow, UserRow
from memory.sql.schema import head_revision
from tests.support.records import turn

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite_url", "fresh_postgres_url"])
def empty_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(request.param)
    return url


@pytest.fixture
async def empty_engine(empty_url: str) -> AsyncIterator[AsyncEngine]:
    engine = open_engine(empty_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_upgrade_from_empty_builds_exactly_the_models(empty_engine: AsyncEngine) -> None:
    assert await schema_revision(empty_engine) is None
    await upgrade_schema(empty_engine)
    assert await schema_revision(empty_engine) == head_revision()
    async with empty_engine.connect() as conn:
        differences = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
        )
    assert differences == []
    await upgrade_schema(empty_engine)  # at head already: a no-op


async def test_downgrade_step_by_step_and_back(empty_engine: AsyncEngine) -> None:
    await upgrade_schema(empty_engine)
    await downgrade_schema(empty_engine)
    assert await schema_revision(empty_engine) == "0004"
    async with empty_engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    assert "handoff_deliveries" not in tables
    assert "turns" in tables
    await downgrade_schema(empty_engine)
    assert await schema_revision(empty_engine) == "0003"
    async with empty_engine.connect() as conn:
        columns = await conn.run_sync(
            lambda sync: {c["name"] for c in inspect(sync).get_columns("turns")}
        )
    assert "generator" in columns
    assert "flow_state" not in columns
    await upgrade_schema(empty_engine)
    assert await schema_revision(empty_engine) == head_revision()


async def test_upgrading_to_the_mood_totals_fills_them_from_stored_turns(
    empty_engine: AsyncEngine,
) -> None:
    await upgrade_schema(empty_engine, "0001")
    async with empty_engine.begin() as conn:
        await conn.execute(
            insert(UserRow),
            [{"tenant": "default", "external_id": "alice", "created_at": 1.0}],
        )
        user_id = (await conn.execute(select(UserRow.id))).scalar_one()
        await conn.execute(
            insert(SessionRow),
            [{"id": "s1", "user_id": user_id, "started_at": 1.0, "last_at": 3.0}],
        )
        rows = [turn("s1", seq, valence=0.5 * seq - 1.0) for seq in (1, 2, 3)]
        for record in rows:
            turn_id = (
                await conn.execute(
                    insert(TurnRow).returning(TurnRow.id),
                    [
                        {
                            "session_id": "s1",
                            "user_id": user_id,
                            "turn_id": record.turn_id,
                            "seq": record.seq,
                            "text": record.text,
                            "reply": record.reply,
                            "interrupted": False,
                            "generator": "template",
                            "created_at": record.created_at,
                        }
                    ],
                )
            ).scalar_one()
            await conn.execute(
                insert(Base.metadata.tables["emotion_readings"]),
                [
                    {
                        "turn_id": turn_id,
                        "scores": dict(record.emotion.scores),
                        "dominant": "anger",
                        "valence": record.emotion.valence,
                        "arousal": record.emotion.arousal,
                        "intensity": record.emotion.intensity,
                        "model": "test-model",
                    }
                ],
            )
    await upgrade_schema(empty_engine)
    async with empty_engine.connect() as conn:
        mood = (await conn.execute(select(UserMoodRow))).one()
    assert (mood.turns, mood.anger, mood.neutral) == (3, 3, 0)
    assert mood.valence_sum == pytest.approx(-0.5 + 0.0 + 0.5)
    async with SqlConversationStore(empty_engine) as store:
        summary = await store.history("alice", now=10.0)
    assert summary.turns == 3
    assert summary.frequent == ("anger",)
