"""SqlTurnLedger against a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from memory.ledger import ClaimOutcome, InMemoryTurnLedger, LedgerSession, TurnLedger
from memory.sql import SqlTurnLedger, open_engine
from memory.sql.models import LedgerRow

pytestmark = pytest.mark.integration

CLAIMED, DONE, BUSY, WAIT = (
    ClaimOutcome.CLAIMED,
    ClaimOutcome.DONE,
    ClaimOutcome.BUSY,
    ClaimOutcome.WAIT,
)
LEASE = 30.0
GAP = 5.0


async def claim(
    ledger: TurnLedger, session: str, seq: int, worker: str, now: float = 0.0
) -> ClaimOutcome:
    return await ledger.claim(
        session,
        seq,
        f"{session}/{seq}".encode(),
        worker=worker,
        now=now,
        lease=LEASE,
        gap_timeout=GAP,
    )


@pytest.fixture
async def second_engine(db_url: str, sql_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """Another engine (another pool, other connections) on the same database."""
    engine = open_engine(db_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_claim_duplicate_wait_and_complete(sql_engine: AsyncEngine) -> None:
    ledger = SqlTurnLedger(sql_engine)
    assert await claim(ledger, "s", 1, "w1") is CLAIMED
    assert await claim(ledger, "s", 1, "w2") is BUSY  # running elsewhere under a live lease
    assert await claim(ledger, "s", 2, "w2") is WAIT  # turn 1 is unfinished
    await ledger.complete("s", 1, worker="w2")  # not the owner: nothing happens
    assert await claim(ledger, "s", 2, "w2") is WAIT
    await ledger.complete("s", 1, worker="w1")
    assert await claim(ledger, "s", 1, "w2") is DONE  # answered already
    assert await claim(ledger, "s", 2, "w2") is CLAIMED
    assert await claim(ledger, "s", 2, "w2") is CLAIMED  # the owner may claim again
    await ledger.complete("s", 2, worker="w2")
    assert await claim(ledger, "s", 2, "w1") is DONE


async def test_a_turn_whose_predecessor_never_came_waits_for_the_gap(
    sql_engine: AsyncEngine,
) -> None:
    ledger = SqlTurnLedger(sql_engine)
    assert await claim(ledger, "s", 3, "w1", now=100.0) is WAIT
    assert await claim(ledger, "s", 3, "w1", now=100.0 + GAP - 0.5) is WAIT
    assert await claim(ledger, "s", 3, "w1", now=100.0 + GAP) is CLAIMED


async def test_an_expired_lease_makes_the_turn_reclaimable(sql_engine: AsyncEngine) -> None:
    ledger = SqlTurnLedger(sql_engine)
    assert await claim(ledger, "s", 1, "w1", now=0.0) is CLAIMED
    assert await claim(ledger, "t", 2, "w1", now=1.0) is WAIT  # held while it waits
    assert await ledger.reclaimable(now=LEASE - 1, limit=10) == []
    assert await ledger.reclaimable(now=LEASE, limit=10) == [b"s/1"]
    assert await ledger.reclaimable(now=LEASE + 1, limit=10) == [b"s/1", b"t/2"]
    assert await claim(ledger, "s", 1, "w2", now=LEASE + 1) is CLAIMED  # taken over
    await ledger.complete("s", 1, worker="w1")  # the dead owner's late completion is ignored
    assert await ledger.reclaimable(now=2 * LEASE + 1, limit=10) == [b"t/2", b"s/1"]
    await ledger.complete("s", 1, worker="w2")
    assert await ledger.reclaimable(now=10 * LEASE, limit=10) == [b"t/2"]


async def test_reclaimable_respects_the_limit(sql_engine: AsyncEngine) -> None:
    ledger = SqlTurnLedger(sql_engine)
    for n in range(5):
        assert await claim(ledger, f"s{n}", 1, "w1") is CLAIMED
    assert len(await ledger.reclaimable(now=LEASE, limit=3)) == 3


async def test_finished_turns_are_forgotten_beyond_the_window(sql_engine: AsyncEngine) -> None:
    ledger = SqlTurnLedger(sql_engine, keep_per_session=4)
    for seq in range(1, 11):
        assert await claim(ledger, "s", seq, "w1") is CLAIMED
        await ledger.complete("s", seq, worker="w1")
    async with sql_engine.connect() as conn:
        kept = (await conn.execute(select(func.min(LedgerRow.seq)))).scalar_one()
    assert kept == 10 - 4 + 1
    assert await claim(ledger, "s", 10, "w2") is DONE


async def test_a_closed_session_keeps_its_unfinished_turns_and_its_newest_finished_one(
    sql_engine: AsyncEngine,
) -> None:
    ledger = SqlTurnLedger(sql_engine)
    for seq in range(1, 6):
        assert await claim(ledger, "s", seq, "w1") is CLAIMED
        await ledger.complete("s", seq, worker="w1")
    assert await claim(ledger, "s", 6, "w2") is CLAIMED  # still running elsewhere
    await ledger.forget_session("s")
    async with sql_engine.connect() as conn:
        kept = (await conn.execute(select(LedgerRow.seq).order_by(LedgerRow.seq))).scalars()
        assert list(kept) == [5, 6]
    # A turn on its way still finds its predecessor and runs at once.
    await ledger.complete("s", 6, worker="w2")
    assert await claim(ledger, "s", 7, "w1") is CLAIMED


async def test_same_outcomes_as_the_in_memory_ledger(sql_engine: AsyncEngine) -> None:
    rng = random.Random(20240611)
    sql, reference = SqlTurnLedger(sql_engine), InMemoryTurnLedger()
    now = 0.0
    for _ in range(300):
        now += rng.choice((0.0, 0.5, 2.0, 20.0))
        session, seq, worker = rng.choice("ab"), rng.randint(1, 5), rng.choice(("w1", "w2"))
        operation = rng.random()
        if operation < 0.6:
            got = await claim(sql, session, seq, worker, now)
            assert got is await claim(reference, session, seq, worker, now)
        elif operation < 0.9:
            await sql.complete(session, seq, worker=worker)
            await reference.complete(session, seq, worker=worker)
        else:
            found = await sql.reclaimable(now=now, limit=100)
            assert sorted(found) == sorted(await reference.reclaimable(now=now, limit=100))


async def test_two_workers_claim_each_turn_exactly_once(
    sql_engine: AsyncEngine, second_engine: AsyncEngine
) -> None:
    workers = {
        "a1": SqlTurnLedger(sql_engine),
        "a2": SqlTurnLedger(sql_engine),
        "b1": SqlTurnLedger(second_engine),
        "b2": SqlTurnLedger(second_engine),
    }
    turns = [(f"s{n}", 1) for n in range(40)]
    claims = [
        (session, seq, name, ledger) for session, seq in turns for name, ledger in workers.items()
    ]
    random.Random(7).shuffle(claims)
    outcomes = await asyncio.gather(
        *(claim(ledger, session, seq, name) for session, seq, name, ledger in claims)
    )
    claimed = Counter(
        (session, seq)
        for (session, seq, _, _), outcome in zip(claims, outcomes, strict=True)
        if outcome is CLAIMED
    )
    assert claimed == Counter(dict.fromkeys(turns, 1))
    assert set(outcomes) == {CLAIMED, BUSY}


async def test_two_workers_run_every_turn_once_and_in_order(
    sql_engine: AsyncEngine, second_engine: AsyncEngine
) -> None:
    # Both workers receive every turn (duplicates), and each turn must run once, in order.
    sessions, per_session = 4, 6
    ran: list[tuple[str, int, str]] = []

    async def work(name: str, ledger: SqlTurnLedger) -> None:
        pending = [(f"s{n}", seq) for seq in range(1, per_session + 1) for n in range(sessions)]
        while pending:
            session, seq = pending.pop(0)
            outcome = await claim(ledger, session, seq, name)
            if outcome is CLAIMED:
                ran.append((session, seq, name))
                await asyncio.sleep(0)
                await ledger.complete(session, seq, worker=name)
            elif outcome in (WAIT, BUSY):
                pending.append((session, seq))
                await asyncio.sleep(0.001)

    async with asyncio.timeout(60):  # a hang guard, not a timing assertion
        await asyncio.gather(
            work("a", SqlTurnLedger(sql_engine)), work("b", SqlTurnLedger(second_engine))
        )

    assert len(ran) == sessions * per_session
    for n in range(sessions):
        order = [seq for session, seq, _ in ran if session == f"s{n}"]
        assert order == list(range(1, per_session + 1))


async def test_a_resumed_session_goes_on_after_its_last_turn(sql_engine: AsyncEngine) -> None:
    for ledger in (SqlTurnLedger(sql_engine), InMemoryTurnLedger()):
        assert await claim(ledger, "r", 1, "w1") is CLAIMED
        await ledger.complete("r", 1, worker="w1")
        assert await claim(ledger, "r", 2, "w1") is CLAIMED
        assert await ledger.session("r") == LedgerSession(last_seq=2, unfinished=[b"r/2"])
        await ledger.complete("r", 2, worker="w1")
        await ledger.forget_session("r")
        assert await ledger.session("nothing") == LedgerSession(last_seq=0, unfinished=[])
        # Resumed after turn 2: turn 3 need not wait for a predecessor let go of.
        await ledger.resume("r", after=2, now=0.0)
        assert await claim(ledger, "r", 3, "w1") is CLAIMED
        assert (await ledger.session("r")).last_seq == 3


async def test_a_gone_workers_unfinished_turns_are_released_at_once(
    sql_engine: AsyncEngine,
) -> None:
    for ledger in (SqlTurnLedger(sql_engine), InMemoryTurnLedger()):
        assert await claim(ledger, "s", 1, "dead") is CLAIMED
        assert await claim(ledger, "t", 1, "alive") is CLAIMED
        assert await claim(ledger, "u", 1, "dead") is CLAIMED
        await ledger.complete("u", 1, worker="dead")
        assert await ledger.reclaimable(now=1.0, limit=10) == []
        assert await ledger.holders(now=1.0) == {"dead", "alive"}
        assert await ledger.release("dead") == 1  # its one unfinished turn
        assert await ledger.holders(now=1.0) == {"alive"}
        assert await ledger.reclaimable(now=1.0, limit=10) == [b"s/1"]
        assert await claim(ledger, "s", 1, "w2", now=1.0) is CLAIMED
        # Should the worker still be there, its renewal finds the turn taken.
        assert await claim(ledger, "s", 1, "dead", now=1.5) is BUSY
        assert await ledger.release("dead") == 0
        assert await claim(ledger, "t", 1, "w2", now=1.5) is BUSY  # others keep theirs


async def test_a_worker_waiting_for_a_turns_predecessor_holds_the_turn(
    sql_engine: AsyncEngine,
) -> None:
    for ledger in (SqlTurnLedger(sql_engine), InMemoryTurnLedger()):
        assert await claim(ledger, "w", 1, "alive") is CLAIMED
        assert await claim(ledger, "w", 2, "dead") is WAIT
        assert await ledger.holders(now=1.0) == {"alive", "dead"}
        assert await claim(ledger, "w", 2, "alive", now=1.0) is BUSY  # a copy elsewhere
        assert await ledger.release("dead") == 1
        assert await ledger.reclaimable(now=1.0, limit=10) == [b"w/2"]
        assert await claim(ledger, "w", 2, "alive", now=1.0) is WAIT  # its now
        await ledger.complete("w", 1, worker="alive")
        assert await claim(ledger, "w", 2, "alive", now=1.0) is CLAIMED


async def test_a_finished_turn_keeps_its_ending_instead_of_its_words(
    sql_engine: AsyncEngine,
) -> None:
    for ledger in (SqlTurnLedger(sql_engine), InMemoryTurnLedger()):
        assert await claim(ledger, "e", 1, "w1") is CLAIMED
        assert await ledger.ending("e", 1) is None  # unfinished
        await ledger.complete("e", 1, worker="w1", ending=b"the end")
        assert await ledger.ending("e", 1) == b"the end"
        assert await ledger.ending("e", 2) is None
