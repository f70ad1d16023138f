"""SqlConversationStore against a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.errors import ConfigError, StoreError
from agent.values import (
    Exchange,
    HistorySummary,
    Strategy,
    Trend,
)
from memory.records import FeedbackRecord
from memory.sql import SqlConversationStore, WriterConfig, open_engine, upgrade_schema
from memory.sql.models import Base, DecisionRow, EmotionRow, FeedbackRow, TurnRow, UserRow
from tests.support.records import count, turn

pytestmark = pytest.mark.integration


async def test_schema_has_tables_and_indexes(sql_engine: AsyncEngine) -> None:
    await upgrade_schema(sql_engine)  # a second time is harmless

    def describe(sync_conn: object) -> tuple[set[str], set[tuple[str, ...]]]:
        inspector = inspect(sync_conn)
        indexes = {tuple(ix["column_names"]) for ix in inspector.get_indexes("turns")}
        indexes |= {tuple(uq["column_names"]) for uq in inspector.get_unique_constraints("turns")}
        indexes |= {tuple(ix["column_names"]) for ix in inspector.get_indexes("turn_ledger")}
        return set(inspector.get_table_names()), indexes

    async with sql_engine.connect() as conn:
        tables, indexes = await conn.run_sync(describe)
    assert {
        "users",
        "sessions",
        "turns",
        "emotion_readings",
        "decisions",
        "feedback",
        "turn_ledger",
    } <= tables
    assert {("session_id", "seq"), ("user_id", "created_at"), ("done", "lease_until")} <= indexes


async def test_sqlite_connections_use_wal_and_foreign_keys(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
            keys = (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one()
            sync = (await conn.execute(text("PRAGMA synchronous"))).scalar_one()
    finally:
        await engine.dispose()
    assert (mode, keys, sync) == ("wal", 1, 1)


@pytest.mark.parametrize("url", ["mysql+aiomysql://db/heartline", "not a url"])
def test_unsupported_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="postgresql\\+asyncpg"):
        open_engine(url)


async def test_conversation_is_the_last_exchanges_oldest_first(sql_engine: AsyncEngine) -> None:
    records = [turn("s1", seq, valence=seq / 10, strategy=Strategy.CLARIFY) for seq in range(1, 6)]
    async with SqlConversationStore(sql_engine) as store:
        for record in records:
            await store.record_turn(record)
        await store.flush()
        last_three = await store.conversation("s1", limit=3)
        everything = await store.conversation("s1", limit=50)
        assert await store.conversation("nobody", limit=3) == ()
        assert await store.conversation("s1", limit=0) == ()

    assert last_three == tuple(
        Exchange(text=r.text, reply=r.reply, emotion=r.emotion, strategy=Strategy.CLARIFY)
        for r in records[2:]
    )
    assert [e.text for e in everything] == [r.text for r in records]


async def test_a_sessions_answered_turns_come_back_for_its_tenant(sql_engine: AsyncEngine) -> None:
    records = [turn("s1", seq) for seq in range(1, 5)]
    async with SqlConversationStore(sql_engine) as store:
        for record in [*records, turn("s1", 9, tenant="other")]:
            await store.record_turn(record)
        await store.flush()
        last_two = await store.answered_turns("s1", limit=2)
        assert await store.answered_turns("s1", limit=2, tenant="other") != last_two
        assert await store.answered_turns("nobody", limit=2) == ()
    assert [(t.turn_id, t.seq, t.user_id, t.reply) for t in last_two] == [
        ("s1-3", 3, "alice", "reply 3"),
        ("s1-4", 4, "alice", "reply 4"),
    ]


async def test_history_of_a_returning_user(sql_engine: AsyncEngine) -> None:
    first = [turn("s1", 1, valence=0.5), turn("s1", 2, valence=-0.1)]
    second = [turn("s2", 1, valence=0.2, created_at=5_000.0)]
    async with SqlConversationStore(sql_engine) as store:
        for record in first:
            await store.record_turn(record)
        await store.flush()
        during_first = await store.history("alice", now=1_010.0)
        first_of_second = await store.history("alice", now=4_999.0, session_id="s2")
        for record in second:
            await store.record_turn(record)
        await store.flush()
        later = await store.history("alice", now=5_001.0)
        later_hinted = await store.history("alice", now=5_001.0, session_id="s2")

    assert during_first.returning is False
    assert (during_first.sessions, during_first.turns) == (1, 2)
    assert during_first.mean_valence == pytest.approx(0.2)
    # A new session: the first one's turns are "earlier", by hint or by the session gap.
    assert first_of_second.returning is True
    # The hint leaves the asking session out of the earlier ones.
    assert [s.ended_at for s in later.past_sessions] == [5_000.0, 1_002.0]
    assert [s.ended_at for s in later_hinted.past_sessions] == [1_002.0]
    assert later.returning is later_hinted.returning is True
    assert (later.sessions, later.turns) == (2, 3)
    assert later.mean_valence == pytest.approx(0.2)


async def test_history_after_a_long_pause_without_a_hint(sql_engine: AsyncEngine) -> None:
    async with SqlConversationStore(sql_engine, session_gap=600.0) as store:
        await store.record_turn(turn("s1", 1))
        await store.flush()
        soon = await store.history("alice", now=1_100.0)
        much_later = await store.history("alice", now=1_001.0 + 601.0)
    assert soon.returning is False
    assert much_later.returning is True


async def test_a_user_without_turns_is_a_first_timer(sql_engine: AsyncEngine) -> None:
    async with SqlConversationStore(sql_engine) as store:
        await store.record_turn(turn("s1", 1))
        await store.flush()
        assert await store.history("nobody", now=9_999.0) == HistorySummary.first_time()


async def test_recent_dominant_is_the_last_five_newest_first(sql_engine: AsyncEngine) -> None:
    labels = ["joy", "joy", "sadness", "anger", "neutral", "sadness", "joy"]
    async with SqlConversationStore(sql_engine) as store:
        for seq, label in enumerate(labels, start=1):
            await store.record_turn(turn("s1", seq, dominant=label))
        await store.flush()
        summary = await store.history("alice", now=2_000.0)
    assert summary.recent_dominant == ("joy", "sadness", "neutral", "anger", "sadness")


@pytest.mark.parametrize(
    ("valences", "expected"),
    [
        ([0.5, 0.5, 0.5], Trend.UNKNOWN),
        ([-0.6, -0.5, -0.6, 0.1, 0.2, 0.1], Trend.RECOVERING),
        ([0.6, 0.5, 0.6, -0.1, 0.0, 0.1], Trend.DETERIORATING),
        ([0.1, 0.2, 0.1, 0.2, 0.1, 0.2], Trend.STABLE),
        ([-0.9, 0.0, 0.0, 0.0], Trend.RECOVERING),  # 4 turns: the last 3 against 1
        # Only the last 6 turns count: the old -1.0 is out of the window.
        ([-1.0, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3], Trend.STABLE),
    ],
)
async def test_trend(sql_engine: AsyncEngine, valences: list[float], expected: Trend) -> None:
    async with SqlConversationStore(sql_engine) as store:
        for seq, valence in enumerate(valences, start=1):
            await store.record_turn(turn("s1", seq, valence=valence))
        await store.flush()
        summary = await store.history("alice", now=2_000.0)
    assert summary.trend is expected


async def test_one_user_never_sees_another(sql_engine: AsyncEngine) -> None:
    async with SqlConversationStore(sql_engine) as store:
        for seq in range(1, 5):
            await store.record_turn(turn("a1", seq, user_id="alice", valence=0.8, dominant="joy"))
            await store.record_turn(turn("b1", seq, user_id="bob", valence=-0.8, dominant="anger"))
        await store.record_turn(turn("b2", 1, user_id="bob", valence=-0.8, created_at=9_000.0))
        await store.flush()
        alice = await store.history("alice", now=10_000.0)
        alice_talk = await store.conversation("a1", limit=10)
        stranger = await store.history("alice", now=10_000.0, tenant="other")

    assert (alice.sessions, alice.turns) == (1, 4)
    assert alice.mean_valence == pytest.approx(0.8)
    assert set(alice.recent_dominant) == {"joy"}
    assert [e.text for e in alice_talk] == [f"message {seq}" for seq in range(1, 5)]
    assert all(e.emotion is not None and e.emotion.dominant == "joy" for e in alice_talk)
    assert stranger == HistorySummary.first_time()


async def test_a_thousand_turns_are_written_in_few_batches(sql_engine: AsyncEngine) -> None:
    config = WriterConfig(max_batch=256)
    async with SqlConversationStore(sql_engine, writer=config) as store:
        for i in range(1_000):
            await store.record_turn(turn(f"s{i % 10}", i // 10 + 1, user_id=f"u{i % 10 % 7}"))
        await store.flush()
        stats = store.stats
        for model in (TurnRow, EmotionRow, DecisionRow):
            assert await count(sql_engine, model) == 1_000
        assert await count(sql_engine, UserRow) == 7

    assert stats.committed == 1_000
    assert stats.queued == 0
    assert 4 <= stats.batches <= 20  # at most 256 a batch; far fewer than one per row


async def test_a_durable_turn_is_committed_when_recording_returns_and_shares_a_batch(
    sql_engine: AsyncEngine,
) -> None:
    async with SqlConversationStore(sql_engine, writer=WriterConfig(max_wait=0.2)) as store:
        quick = [asyncio.create_task(store.record_turn(turn("s1", seq))) for seq in (1, 2)]
        await store.record_turn(turn("s1", 3), durable=True)
        assert await count(sql_engine, TurnRow) == 3  # what came before it, in its batch
        await asyncio.gather(*quick)
        stats = store.stats
    assert stats.batches == 1


async def test_leaving_the_store_writes_what_was_queued(sql_engine: AsyncEngine) -> None:
    async with SqlConversationStore(sql_engine) as store:
        for seq in range(1, 301):
            await store.record_turn(turn("s1", seq))
        await store.record_feedback(
            FeedbackRecord(
                session_id="s1", user_id="alice", turn_id="s1-300", score=5, created_at=1_300.0
            )
        )
        # No flush: leaving must drain.
    assert await count(sql_engine, TurnRow) == 300
    assert await count(sql_engine, FeedbackRow) == 1


async def test_a_body_exception_still_drains_and_propagates(sql_engine: AsyncEngine) -> None:
    async def fail_after_recording() -> None:
        async with SqlConversationStore(sql_engine) as store:
            await store.record_turn(turn("s1", 1))
            raise KeyError("boom")

    with pytest.raises(KeyError):
        await fail_after_recording()
    assert await count(sql_engine, TurnRow) == 1


async def test_a_repeated_turn_is_kept_once(sql_engine: AsyncEngine) -> None:
    async with SqlConversationStore(sql_engine) as store:
        await store.record_turn(turn("s1", 1))
        await store.record_turn(turn("s1", 1))  # same batch
        await store.flush()
        await store.record_turn(turn("s1", 1))  # a later batch
        await store.flush()
    assert await count(sql_engine, TurnRow) == 1
    assert await count(sql_engine, EmotionRow) == 1


async def test_a_store_that_is_not_running_refuses_records(sql_engine: AsyncEngine) -> None:
    store = SqlConversationStore(sql_engine)
    with pytest.raises(StoreError, match="not running"):
        await store.record_turn(turn("s1", 1))
    async with store:
        await store.record_turn(turn("s1", 1))
    with pytest.raises(StoreError, match="not running"):
        await store.flush()
    async with store:  # reusable
        await store.record_turn(turn("s1", 2))
    assert await count(sql_engine, TurnRow) == 2


async def test_a_batch_that_keeps_failing_raises_store_error(sql_engine: AsyncEngine) -> None:
    async with sql_engine.begin() as conn:
        await conn.execute(text("DROP TABLE decisions"))
    config = WriterConfig(max_attempts=2, backoff=0.0)

    async def record_and_flush() -> None:
        async with SqlConversationStore(sql_engine, writer=config) as store:
            await store.record_turn(turn("s1", 1))
            await store.flush()

    try:
        with pytest.raises(StoreError, match="failed 2 times") as caught:
            await record_and_flush()
        assert caught.value.__cause__ is not None
    finally:
        async with sql_engine.begin() as conn:  # put the table back for the clean-up
            await conn.run_sync(Base.metadata.tables["decisions"].create)


@pytest.fixture(params=["sqlite_url", "fresh_postgres_url"])
def empty_db_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(request.param)
    return url


async def test_processes_starting_together_create_the_schema_once(empty_db_url: str) -> None:
    engines = [open_engine(empty_db_url) for _ in range(4)]
    try:
        await asyncio.gather(*(upgrade_schema(engine) for engine in engines))
    finally:
        for engine in engines:
            await engine.dispose()


async def test_connections_opening_a_new_sqlite_file_together_all_get_in(
    tmp_path: Path,
) -> None:
    """SQLite refuses a second switch to WAL at the same moment without waiting."""
    for round_ in range(20):
        engines = [open_engine(f"sqlite:///{tmp_path}/race-{round_}.db") for _ in range(6)]
        try:

            async def mode(engine: AsyncEngine) -> str:
                async with engine.connect() as conn:
                    return str((await conn.execute(text("PRAGMA journal_mode"))).scalar())

            assert await asyncio.gather(*(mode(engine) for engine in engines)) == ["wal"] * 6
        finally:
            for engine in engines:
                await engine.dispose()
