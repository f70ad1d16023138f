"""Redaction, encryption at rest, export, forget, purge and tenant isolation, for real."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.errors import StoreError
from memory.crypto import TextCipher, new_key
from memory.handoffs import NewDelivery
from memory.records import FeedbackRecord, TurnRecord
from memory.sealing import MessageSealer
from memory.sql import SqlConversationStore, SqlHandoffOutbox, SqlTurnLedger
from memory.sql.models import Base, SessionRow, TurnRow, UserMoodRow
from memory.sql.moods import rebuild_statements
from memory.sql.retention import retention_sweeper, rotate_handoff_key, rotate_key
from memory.sql.users import export_user, forget_user, purge_before
from tests.support.records import count, turn

pytestmark = pytest.mark.integration

SECRET_WORDS = "mail me at alice.smith@example.com or call +44 20 7946 0958"


def said(record: TurnRecord, words: str) -> TurnRecord:
    return dataclasses.replace(record, text=words, reply=f"noted: {words}")


async def _dump(engine: AsyncEngine) -> str:
    """Every value of every table, as one string to search."""
    values: list[str] = []
    async with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in (await conn.execute(select(table))).all():
                values.extend(
                    bytes(v).decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                    for v in row
                )
    return "\n".join(values)


async def test_stored_text_is_redacted(sql_engine: AsyncEngine) -> None:
    async with SqlConversationStore(sql_engine) as store:
        await store.record_turn(said(turn("s1", 1), SECRET_WORDS))
        await store.flush()
        [exchange] = await store.conversation("s1", limit=5)
    everything = await _dump(sql_engine)
    assert "alice.smith@example.com" not in everything
    assert "7946" not in everything
    assert exchange.text == "mail me at [EMAIL] or call [PHONE]"
    assert exchange.reply == "noted: mail me at [EMAIL] or call [PHONE]"


def _cipher(*entries: tuple[str, str]) -> TextCipher:
    return TextCipher.from_spec(",".join(f"{kid}:{key}" for kid, key in entries))


async def test_message_text_is_encrypted_at_rest_and_keys_rotate(sql_engine: AsyncEngine) -> None:
    k1, k2 = ("k1", new_key()), ("k2", new_key())
    async with SqlConversationStore(sql_engine, cipher=_cipher(k1)) as store:
        for seq in range(1, 4):
            await store.record_turn(said(turn("s1", seq), f"my parcel {seq} is late"))
        await store.flush()
    async with sql_engine.connect() as conn:
        stored = (await conn.execute(select(TurnRow.text, TurnRow.reply))).all()
    assert all(t.startswith("enc:v1:k1:") and r.startswith("enc:v1:k1:") for t, r in stored)
    assert "parcel" not in await _dump(sql_engine)

    # Without the key nothing is handed out; with it the words come back.
    async with SqlConversationStore(sql_engine) as keyless:
        with pytest.raises(StoreError, match="no key is configured"):
            await keyless.conversation("s1", limit=5)

    rotated = _cipher(k2, k1)
    assert await rotate_key(sql_engine, rotated, batch=2) == 3
    assert await rotate_key(sql_engine, rotated) == 0  # nothing left to do
    async with SqlConversationStore(sql_engine, cipher=_cipher(k2)) as store:
        talk = await store.conversation("s1", limit=5)
    assert [e.text for e in talk] == [f"my parcel {seq} is late" for seq in (1, 2, 3)]
    async with SqlConversationStore(sql_engine, cipher=_cipher(k1)) as old_key_only:
        with pytest.raises(StoreError, match="k2"):
            await old_key_only.conversation("s1", limit=5)


async def test_a_ciphertext_moved_to_another_user_does_not_decrypt(
    sql_engine: AsyncEngine,
) -> None:
    cipher = _cipher(("k1", new_key()))
    async with SqlConversationStore(sql_engine, cipher=cipher) as store:
        await store.record_turn(said(turn("a1", 1, user_id="alice"), "alice's words"))
        await store.record_turn(said(turn("b1", 1, user_id="bob"), "bob's words"))
        await store.flush()
    async with sql_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE turns SET text = (SELECT text FROM turns WHERE session_id = 'a1') "
                "WHERE session_id = 'b1'"
            )
        )
    async with SqlConversationStore(sql_engine, cipher=cipher) as store:
        with pytest.raises(StoreError, match="associated data"):
            await store.conversation("b1", limit=5)


async def _fill(engine: AsyncEngine, tenant: str = "default") -> None:
    async with SqlConversationStore(engine) as store:
        for user in ("alice", "bob"):
            for session in ("1", "2"):
                sid = f"{tenant}-{user}-{session}"
                for seq in (1, 2):
                    created = 1_000.0 * int(session) + seq
                    record = turn(
                        sid, seq, user_id=user, dominant="joy", created_at=created, tenant=tenant
                    )
                    await store.record_turn(said(record, f"{user} says hello {session}.{seq}"))
                await store.record_feedback(
                    FeedbackRecord(
                        session_id=sid, user_id=user, turn_id=f"{sid}-1", score=1,
                        created_at=1_000.0 * int(session) + 5, tenant=tenant,
                    )
                )  # fmt: skip
        await store.flush()


async def test_export_holds_everything_about_the_user_and_nothing_else(
    sql_engine: AsyncEngine,
) -> None:
    await _fill(sql_engine)
    await _fill(sql_engine, tenant="other")
    ledger = SqlTurnLedger(sql_engine)
    await ledger.claim(
        "default-alice-2",
        3,
        b'{"text": "pending words"}',
        worker="w",
        now=3.0,
        lease=30.0,
        gap_timeout=5.0,
    )
    sealer = MessageSealer(tenant="default")
    exported = await export_user(sql_engine, "alice", sealer=sealer, tenant="default")
    assert exported is not None
    assert {s["id"] for s in exported["sessions"]} == {"default-alice-1", "default-alice-2"}
    assert [t["text"] for t in exported["turns"]] == [
        f"alice says hello {n}" for n in ("1.1", "1.2", "2.1", "2.2")
    ]
    assert all(t["emotion"]["dominant"] == "joy" for t in exported["turns"])
    assert all(t["decision"]["policy"] == "rules" for t in exported["turns"])
    assert len(exported["feedback"]) == 2
    assert exported["mood_totals"]["turns"] == 4
    assert exported["label_counts"] == {"joy": 4}
    assert [e["payload"] for e in exported["ledger"]] == ['{"text": "pending words"}']
    assert "bob" not in repr(exported)
    assert "other-" not in repr(exported)
    assert await export_user(sql_engine, "nobody", sealer=sealer, tenant="default") is None


async def test_forget_erases_every_row_about_the_user(sql_engine: AsyncEngine) -> None:
    await _fill(sql_engine)
    await _fill(sql_engine, tenant="other")
    ledger = SqlTurnLedger(sql_engine)
    await ledger.claim(
        "default-alice-2", 3, b"alice pending", worker="w", now=3.0, lease=30.0, gap_timeout=5.0
    )
    before = await count(sql_engine, TurnRow)

    deleted = await forget_user(sql_engine, "alice", tenant="default")

    assert deleted["turns"] == 4
    assert deleted["turn_ledger"] == 1
    everything = await _dump(sql_engine)
    assert "default-alice" not in everything
    assert "alice says" in everything  # only the other tenant's alice is left
    assert "alice pending" not in everything
    assert await count(sql_engine, TurnRow) == before - 4
    async with SqlConversationStore(sql_engine) as store:
        assert (await store.history("alice", now=9_999.0)).turns == 0
        assert (await store.history("bob", now=9_999.0)).turns == 4
    assert await forget_user(sql_engine, "alice", tenant="default") == {}


async def test_purge_deletes_old_rows_and_rebuilds_the_totals(sql_engine: AsyncEngine) -> None:
    await _fill(sql_engine)
    async with SqlConversationStore(sql_engine) as store:
        await store.record_turn(turn("carol-old", 1, user_id="carol", created_at=10.0))
        await store.flush()

    result = await purge_before(sql_engine, cutoff=1_500.0)

    assert result.deleted["turns"] == 5  # sessions "1" of alice and bob, and carol's
    assert result.deleted["sessions"] == 3
    assert result.deleted["users"] == 1  # carol: nothing of hers is left
    async with SqlConversationStore(sql_engine) as store:
        alice = await store.history("alice", now=9_999.0)
    assert (alice.turns, alice.sessions) == (2, 1)
    async with sql_engine.connect() as conn:
        totals = sorted((await conn.execute(select(UserMoodRow.user_id, UserMoodRow.turns))).all())
    async with sql_engine.begin() as conn:
        for statement in rebuild_statements():
            await conn.execute(statement)
        assert (
            sorted((await conn.execute(select(UserMoodRow.user_id, UserMoodRow.turns))).all())
            == totals
        )
    assert await count(sql_engine, SessionRow) == 2


async def test_one_tenant_never_reads_another(sql_engine: AsyncEngine) -> None:
    await _fill(sql_engine, tenant="acme")
    async with SqlConversationStore(sql_engine) as store:
        assert (await store.history("alice", now=9_999.0, tenant="globex")).turns == 0
        assert await store.conversation("acme-alice-1", limit=10, tenant="globex") == ()
        # A forged record naming acme's session is dropped, not written into it.
        await store.record_turn(turn("acme-alice-1", 9, user_id="alice", tenant="globex"))
        await store.flush()
        assert len(await store.conversation("acme-alice-1", limit=10, tenant="acme")) == 2
        assert (await store.history("alice", now=9_999.0, tenant="acme")).turns == 4
    sealer = MessageSealer(tenant="globex")
    exported = await export_user(sql_engine, "alice", sealer=sealer, tenant="globex")
    assert exported is not None  # the forged record's user, with nothing of acme's
    assert exported["sessions"] == exported["turns"] == []
    forgotten = await forget_user(sql_engine, "alice", tenant="globex")
    assert forgotten["turns"] == forgotten["sessions"] == 0
    async with SqlConversationStore(sql_engine) as store:
        assert (await store.history("alice", now=9_999.0, tenant="acme")).turns == 4


async def test_the_retention_sweeper_purges_while_it_runs(sql_engine: AsyncEngine) -> None:
    await _fill(sql_engine)  # every turn stored "in 1970"
    async with SqlConversationStore(sql_engine) as store:
        await store.record_turn(turn("fresh", 1, user_id="dora", created_at=time.time()))
        await store.flush()
    async with retention_sweeper(sql_engine, keep_for=86_400.0, interval=0.05):
        for _ in range(500):  # the first sweep runs at once; allow 10 s
            if await count(sql_engine, TurnRow) == 1:
                break
            await asyncio.sleep(0.02)
    async with SqlConversationStore(sql_engine) as store:
        assert (await store.history("dora", now=time.time())).turns == 1
        assert (await store.history("alice", now=time.time())).turns == 0


async def _handoff(engine: AsyncEngine, tenant: str, user: str, delivery_id: str) -> None:
    outbox = SqlHandoffOutbox(engine)
    document = f'{{"user_id": "{user}", "transcript": [{{"text": "{user} needs a person"}}]}}'
    recorded = await outbox.record(
        NewDelivery(
            delivery_id=delivery_id,
            tenant=tenant,
            session_id=f"{tenant}-{user}-1",
            user_id=user,
            trigger="rule",
            body=document,
        ),
        now=1_000.0,
    )
    assert recorded


async def test_handoff_documents_are_exported_forgotten_and_purged(
    sql_engine: AsyncEngine,
) -> None:
    await _fill(sql_engine)
    await _handoff(sql_engine, "default", "alice", "d-alice")
    await _handoff(sql_engine, "other", "alice", "d-other-alice")
    await _handoff(sql_engine, "default", "bob", "d-bob")
    sealer = MessageSealer(tenant="default")

    exported = await export_user(sql_engine, "alice", sealer=sealer, tenant="default")
    assert exported is not None
    assert [h["delivery_id"] for h in exported["handoffs"]] == ["d-alice"]
    assert "alice needs a person" in exported["handoffs"][0]["body"]

    deleted = await forget_user(sql_engine, "alice", tenant="default")
    assert deleted["handoff_deliveries"] == 1
    assert "d-alice" not in await _dump(sql_engine)
    assert "d-other-alice" in await _dump(sql_engine)

    outbox = SqlHandoffOutbox(sql_engine)
    (claim,) = [
        c
        for c in await outbox.claim_due(now=1_001.0, limit=10, lease=60.0)
        if c.delivery_id == "d-bob"
    ]
    await outbox.delivered(claim, status=200, now=1_001.0)
    purged = await purge_before(sql_engine, cutoff=1_500.0)
    assert purged.deleted["handoff_deliveries"] == 1  # delivered; the other alice's is pending
    assert "d-other-alice" in await _dump(sql_engine)


async def test_handoff_documents_rotate_to_the_new_key(sql_engine: AsyncEngine) -> None:
    k1, k2 = ("k1", new_key()), ("k2", new_key())
    outbox = SqlHandoffOutbox(sql_engine, cipher=_cipher(k1))
    delivery = NewDelivery(
        delivery_id="d1",
        tenant="default",
        session_id="s1",
        user_id="alice",
        trigger="rule",
        body='{"text": "alice needs a person"}',
    )
    assert await outbox.record(delivery, now=1.0)
    assert await rotate_handoff_key(sql_engine, _cipher(k2, k1)) == 1
    assert await rotate_handoff_key(sql_engine, _cipher(k2, k1)) == 0
    (claim,) = await SqlHandoffOutbox(sql_engine, cipher=_cipher(k2)).claim_due(
        now=2.0, limit=1, lease=60.0
    )
    assert claim.body == delivery.body
