"""One store, many tenants: the same user id in two tenants is two users, for real."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.errors import StoreError
from agent.values import HistorySummary
from memory.crypto import TextCipher, new_key
from memory.records import FeedbackRecord, TurnRecord
from memory.sealing import MessageSealer
from memory.sql import SqlConversationStore, WriterConfig
from memory.sql.models import FeedbackRow, UserLabelRow, UserMoodRow, UserRow
from memory.sql.users import export_user, forget_user
from tests.support.records import turn

pytestmark = pytest.mark.integration

# Writes wait for a flush, so everything recorded before it goes in one batch.
ONE_BATCH = WriterConfig(max_wait=60.0)


def said(record: TurnRecord) -> TurnRecord:
    """The record with words that name its tenant, so a mix-up shows."""
    return dataclasses.replace(
        record, text=f"{record.tenant} says {record.seq}", reply=f"{record.tenant} hears"
    )


async def _two_alices(store: SqlConversationStore) -> None:
    """acme's alice is happy over two sessions; globex's alice is angry in one."""
    for seq in (1, 2, 3):
        happy = turn("acme-1", seq, valence=0.8, dominant="joy", tenant="acme")
        angry = turn("globex-1", seq, valence=-0.6, dominant="anger", tenant="globex")
        await store.record_turn(said(happy))
        await store.record_turn(said(angry))
    later = turn("acme-2", 1, valence=0.8, dominant="joy", created_at=5_000.0, tenant="acme")
    await store.record_turn(said(later))
    for tenant, score in (("acme", 5), ("globex", 1)):
        await store.record_feedback(
            FeedbackRecord(
                session_id=f"{tenant}-1", user_id="alice", turn_id=f"{tenant}-1-3",
                score=score, created_at=1_010.0, tenant=tenant,
            )
        )  # fmt: skip
    await store.flush()


async def test_a_batch_mixing_tenants_keeps_each_alice_apart(sql_engine: AsyncEngine) -> None:
    async with SqlConversationStore(sql_engine, writer=ONE_BATCH) as store:
        await _two_alices(store)
        assert store.stats.batches == 1
        acme = await store.history("alice", now=9_999.0, session_id="acme-3", tenant="acme")
        globex = await store.history("alice", now=9_999.0, session_id="globex-2", tenant="globex")
        nobody = await store.history("alice", now=9_999.0)
        acme_talk = await store.conversation("acme-1", limit=10, tenant="acme")
        globex_talk = await store.conversation("globex-1", limit=10, tenant="globex")
        crossed = await store.conversation("acme-1", limit=10, tenant="globex")

    assert (acme.sessions, acme.turns, acme.frequent) == (2, 4, ("joy",))
    assert acme.mean_valence == pytest.approx(0.8)
    assert [s.mood for s in acme.past_sessions] == ["joy", "joy"]
    assert (globex.sessions, globex.turns, globex.frequent) == (1, 3, ("anger",))
    assert globex.mean_valence == pytest.approx(-0.6)
    assert set(globex.recent_dominant) == {"anger"}
    assert [s.mood for s in globex.past_sessions] == ["anger"]
    assert nobody == HistorySummary.first_time()  # the default tenant has no alice
    assert [e.text for e in acme_talk] == ["acme says 1", "acme says 2", "acme says 3"]
    assert [e.text for e in globex_talk] == ["globex says 1", "globex says 2", "globex says 3"]
    assert crossed == ()

    async with sql_engine.connect() as conn:
        users = (await conn.execute(select(UserRow.tenant, UserRow.external_id))).all()
        moods = (
            await conn.execute(
                select(UserRow.tenant, UserMoodRow.turns, UserMoodRow.valence_sum).join(
                    UserRow, UserRow.id == UserMoodRow.user_id
                )
            )
        ).all()
        labels = (
            await conn.execute(
                select(UserRow.tenant, UserLabelRow.label, UserLabelRow.count).join(
                    UserRow, UserRow.id == UserLabelRow.user_id
                )
            )
        ).all()
        scores = (
            await conn.execute(
                select(UserRow.tenant, FeedbackRow.score).join(
                    UserRow, UserRow.id == FeedbackRow.user_id
                )
            )
        ).all()
    assert sorted(users) == [("acme", "alice"), ("globex", "alice")]
    assert {(t, n): pytest.approx(v) for t, n, v in moods} == {
        ("acme", 4): pytest.approx(3.2),
        ("globex", 3): pytest.approx(-1.8),
    }
    assert sorted(labels) == [("acme", "joy", 4), ("globex", "anger", 3)]
    assert sorted(scores) == [("acme", 5), ("globex", 1)]


async def test_export_and_forget_touch_one_tenant_only(sql_engine: AsyncEngine) -> None:
    async with SqlConversationStore(sql_engine, writer=ONE_BATCH) as store:
        await _two_alices(store)
    acme_sealer, globex_sealer = MessageSealer(tenant="acme"), MessageSealer(tenant="globex")
    globex_before = await export_user(sql_engine, "alice", sealer=globex_sealer, tenant="globex")

    exported = await export_user(sql_engine, "alice", sealer=acme_sealer, tenant="acme")
    assert exported is not None
    assert {s["id"] for s in exported["sessions"]} == {"acme-1", "acme-2"}
    assert [t["text"] for t in exported["turns"]] == [f"acme says {n}" for n in (1, 2, 3, 1)]
    assert [f["score"] for f in exported["feedback"]] == [5]
    assert exported["mood_totals"]["turns"] == 4
    assert exported["label_counts"] == {"joy": 4}
    assert "globex" not in repr(exported)

    deleted = await forget_user(sql_engine, "alice", tenant="acme")

    assert (deleted["turns"], deleted["sessions"], deleted["feedback"]) == (4, 2, 1)
    assert await export_user(sql_engine, "alice", sealer=acme_sealer, tenant="acme") is None
    globex_after = await export_user(sql_engine, "alice", sealer=globex_sealer, tenant="globex")
    assert globex_after == globex_before
    assert globex_after is not None
    assert len(globex_after["turns"]) == 3
    async with SqlConversationStore(sql_engine) as store:
        assert await store.history("alice", now=9_999.0, tenant="acme") == (
            HistorySummary.first_time()
        )
        assert (await store.history("alice", now=9_999.0, tenant="globex")).turns == 3
        assert len(await store.conversation("globex-1", limit=10, tenant="globex")) == 3


async def test_encrypted_text_is_bound_to_its_tenant(sql_engine: AsyncEngine) -> None:
    cipher = TextCipher.from_spec(f"k1:{new_key()}")
    async with SqlConversationStore(sql_engine, cipher=cipher, writer=ONE_BATCH) as store:
        await _two_alices(store)
    async with sql_engine.connect() as conn:
        stored = (await conn.execute(text("SELECT text FROM turns"))).scalars().all()
    assert len(stored) == 7
    assert all(value.startswith("enc:v1:k1:") for value in stored)

    # A new store (no sealer made yet) opens each tenant's text with that tenant's sealer.
    async with SqlConversationStore(sql_engine, cipher=cipher) as store:
        acme_talk = await store.conversation("acme-2", limit=10, tenant="acme")
        globex_talk = await store.conversation("globex-1", limit=10, tenant="globex")
    assert [(e.text, e.reply) for e in acme_talk] == [("acme says 1", "acme hears")]
    assert [e.text for e in globex_talk] == ["globex says 1", "globex says 2", "globex says 3"]
    sealer = MessageSealer(tenant="globex", cipher=cipher)
    exported = await export_user(sql_engine, "alice", sealer=sealer, tenant="globex")
    assert exported is not None
    assert [t["text"] for t in exported["turns"]] == [f"globex says {n}" for n in (1, 2, 3)]

    # Same user id, same column: only the tenant differs, and the value does not open.
    async with sql_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE turns SET text = (SELECT text FROM turns WHERE session_id = 'acme-2') "
                "WHERE session_id = 'globex-1' AND seq = 1"
            )
        )
    async with SqlConversationStore(sql_engine, cipher=cipher) as store:
        with pytest.raises(StoreError, match="associated data"):
            await store.conversation("globex-1", limit=10, tenant="globex")
