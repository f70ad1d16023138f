"""`SqlTurnLedger`: the turn ledger shared by every worker through the database.

Same semantics as `memory.ledger.InMemoryTurnLedger`, and the same rule
(`memory.ledger.decide_claim`). A claim is one transaction: insert the row if
absent and lock it, in one statement (an upsert that leaves an existing row as it
is and returns it; on PostgreSQL it takes the row's lock as ``SELECT ... FOR UPDATE``
would, and SQLite starts the transaction with ``BEGIN IMMEDIATE``, which holds the
database's write lock), read the previous turn and whether any earlier one is
unfinished, decide, and on `CLAIMED` or `WAIT` take the lease. Two workers claiming
one turn are serialised on that row, so exactly one of them gets `CLAIMED`. Each
statement is a round trip to a database server, taken while the turn waits.
"""

from __future__ import annotations

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from memory.ledger import ClaimOutcome, LedgerEntry, LedgerSession, decide_claim, takes_lease
from memory.sql.engine import (
    insert_ignoring,
    lone_statements,
    store_errors,
    upsert_adding,
    write_engine,
)
from memory.sql.models import LedgerRow

__all__ = ["SqlTurnLedger"]


class SqlTurnLedger:
    """A `TurnLedger` in the `turn_ledger` table of an engine from `open_engine`.

    Like the in-memory ledger it forgets finished turns of a session that lie
    more than `keep_per_session` turns behind the one just completed (and
    before its first unfinished turn), so the table does not grow without end.
    Every method raises `StoreError` on a database failure and is safe to
    cancel: the open transaction rolls back.
    """

    def __init__(self, engine: AsyncEngine, *, keep_per_session: int = 64) -> None:
        self._engine = engine
        self._write = write_engine(engine)
        # Reads, and writes of one statement or of several that need not be atomic together.
        self._reads = lone_statements(engine)
        self._lone_writes = lone_statements(self._write)
        self._keep = keep_per_session
        # The row, inserted or as it was, and locked; `first_seen` keeps the earlier time.
        self._claim_row = upsert_adding(
            engine, LedgerRow.__table__, conflict=("session_id", "seq"), least=("first_seen",)
        ).returning(*_ENTRY)

    async def claim(
        self,
        session_id: str,
        seq: int,
        payload: bytes,
        *,
        worker: str,
        now: float,
        lease: float,
        gap_timeout: float,
    ) -> ClaimOutcome:
        row = {
            "session_id": session_id,
            "seq": seq,
            "payload": payload,
            "done": False,
            "owner": None,
            "lease_until": 0.0,
            "first_seen": now,
        }
        key = {"sid": session_id, "turn": seq}

        def claim(conn: Connection) -> ClaimOutcome:
            entry = LedgerEntry(**conn.execute(self._claim_row, row).one()._asdict())
            previous, earlier_unfinished = _before(conn, key, seq)
            outcome = decide_claim(
                entry,
                previous,
                earlier_unfinished,
                seq=seq,
                worker=worker,
                now=now,
                gap_timeout=gap_timeout,
            )
            if takes_lease(outcome):
                conn.execute(_TAKE_LEASE, {**key, "new_owner": worker, "until": now + lease})
            return outcome

        with store_errors("claiming a turn"):
            async with self._write.begin() as conn:
                return await conn.run_sync(claim)

    async def complete(
        self, session_id: str, seq: int, *, worker: str, ending: bytes = b""
    ) -> None:
        """Mark the turn done if `worker` holds it; otherwise do nothing.

        The payload (the user's words, redacted at the gateway) gives way to the
        turn's `ending`: the ledger holds a turn's text only while the turn may
        have to run again.
        """
        key = {"sid": session_id, "turn": seq}

        def complete(conn: Connection) -> None:
            finished = conn.execute(_FINISH, {**key, "holder": worker, "ending": ending})
            if finished.rowcount and seq > self._keep:  # else no turn lies that far behind
                conn.execute(_FORGET_OLD, {"sid": session_id, "upto": seq - self._keep})

        with store_errors("completing a turn"):
            async with self._lone_writes.begin() as conn:
                await conn.run_sync(complete)

    async def reclaimable(self, *, now: float, limit: int) -> list[bytes]:
        """Payloads of claimed, unfinished turns whose lease has expired, oldest lease first."""
        query = (
            select(LedgerRow.payload)
            .where(
                LedgerRow.done.is_(False),
                LedgerRow.lease_until <= now,
                LedgerRow.owner.is_not(None),
            )
            .order_by(LedgerRow.lease_until)
            .limit(limit)
        )
        with store_errors("listing reclaimable turns"):
            async with self._reads.connect() as conn:
                return list((await conn.execute(query)).scalars())

    async def session(self, session_id: str) -> LedgerSession:
        """The session's highest turn number and unfinished turns: a closed session keeps
        its newest finished row (`forget_session`), so the number survives the close."""
        mine = LedgerRow.session_id == session_id
        last = select(func.max(LedgerRow.seq)).where(mine)
        unfinished = (
            select(LedgerRow.payload).where(mine, LedgerRow.done.is_(False)).order_by(LedgerRow.seq)
        )
        with store_errors("reading a session's turns"):
            async with self._reads.connect() as conn:
                last_seq = (await conn.execute(last)).scalar_one_or_none() or 0
                payloads = [bytes(p) for p in (await conn.execute(unfinished)).scalars()]
        return LedgerSession(last_seq=int(last_seq), unfinished=payloads)

    async def resume(self, session_id: str, *, after: int, now: float) -> None:
        if after <= 0:
            return
        with store_errors("resuming a session"):
            async with self._lone_writes.begin() as conn:
                await conn.execute(
                    insert_ignoring(self._engine, LedgerRow, conflict=("session_id", "seq")),
                    {
                        "session_id": session_id,
                        "seq": after,
                        "payload": b"",
                        "done": True,
                        "owner": None,
                        "lease_until": 0.0,
                        "first_seen": now,
                    },
                )

    async def ending(self, session_id: str, seq: int) -> bytes | None:
        """The ending a finished turn was completed with; None if unknown or unfinished."""
        query = select(LedgerRow.payload).where(
            LedgerRow.session_id == session_id, LedgerRow.seq == seq, LedgerRow.done.is_(True)
        )
        with store_errors("reading a turn's ending"):
            async with self._reads.connect() as conn:
                found = (await conn.execute(query)).scalar_one_or_none()
        return bytes(found) if found else None

    async def holders(self, *, now: float) -> set[str]:
        """The workers holding a live lease on an unfinished turn."""
        query = (
            select(LedgerRow.owner)
            .where(LedgerRow.done.is_(False), LedgerRow.lease_until > now)
            .distinct()
        )
        with store_errors("listing the workers holding turns"):
            async with self._reads.connect() as conn:
                return {owner for owner in (await conn.execute(query)).scalars() if owner}

    async def release(self, worker: str) -> int:
        """End the leases of `worker`'s unfinished turns: it is gone."""
        with store_errors("releasing a worker's turns"):
            async with self._lone_writes.begin() as conn:
                released = await conn.execute(
                    update(LedgerRow)
                    .where(
                        LedgerRow.owner == worker,
                        LedgerRow.done.is_(False),
                        LedgerRow.lease_until > 0.0,
                    )
                    .values(lease_until=0.0)
                )
        return int(released.rowcount)

    async def forget_session(self, session_id: str) -> None:
        """Drop the session's finished turns but its newest one.

        Another worker may still hold a turn of the session, unfinished, or have one on
        its way: its row stays, and so does the newest finished one, which a turn on
        its way finds as its predecessor instead of waiting `gap_timeout` for it.
        """
        newest = (
            select(func.max(LedgerRow.seq))
            .where(LedgerRow.session_id == session_id, LedgerRow.done.is_(True))
            .scalar_subquery()
        )
        with store_errors("forgetting a session"):
            async with self._lone_writes.begin() as conn:
                await conn.execute(
                    delete(LedgerRow).where(
                        LedgerRow.session_id == session_id,
                        LedgerRow.done.is_(True),
                        LedgerRow.seq < newest,
                    )
                )


# Built once: building a statement costs about as much as running it, every turn.
_KEY = (LedgerRow.session_id == bindparam("sid"), LedgerRow.seq == bindparam("turn"))
_ENTRY = (
    LedgerRow.payload,
    LedgerRow.first_seen,
    LedgerRow.done,
    LedgerRow.owner,
    LedgerRow.lease_until,
)
# The two highest rows below `seq` that are either `seq - 1` or unfinished: if `seq - 1`
# exists it comes first; any unfinished row shows.
_BEFORE = (
    select(
        LedgerRow.seq,
        LedgerRow.first_seen,
        LedgerRow.done,
        LedgerRow.owner,
        LedgerRow.lease_until,
    )
    .where(
        LedgerRow.session_id == bindparam("sid"),
        LedgerRow.seq < bindparam("turn"),
        or_(LedgerRow.seq == bindparam("turn") - 1, LedgerRow.done.is_(False)),
    )
    .order_by(LedgerRow.seq.desc())
    .limit(2)
)
_TAKE_LEASE = (
    update(LedgerRow)
    .where(*_KEY)
    .values(owner=bindparam("new_owner"), lease_until=bindparam("until"))
)
_FINISH = (
    update(LedgerRow)
    .where(*_KEY, LedgerRow.owner == bindparam("holder"))
    .values(done=True, payload=bindparam("ending"))
)
_FIRST_UNFINISHED = (
    select(func.min(LedgerRow.seq))
    .where(LedgerRow.session_id == bindparam("sid"), LedgerRow.done.is_(False))
    .scalar_subquery()
)
# Finished turns far enough behind, and before the session's first unfinished one.
_FORGET_OLD = delete(LedgerRow).where(
    LedgerRow.session_id == bindparam("sid"),
    LedgerRow.done.is_(True),
    LedgerRow.seq <= bindparam("upto"),
    or_(_FIRST_UNFINISHED.is_(None), LedgerRow.seq < _FIRST_UNFINISHED),
)


def _before(conn: Connection, key: dict[str, object], seq: int) -> tuple[LedgerEntry | None, bool]:
    """The entry of turn `seq - 1` (without its payload) and whether an earlier turn is open."""
    rows = conn.execute(_BEFORE, key).all()
    previous = None
    if rows and rows[0].seq == seq - 1:
        first = rows[0]
        previous = LedgerEntry(
            payload=b"",
            first_seen=first.first_seen,
            done=first.done,
            owner=first.owner,
            lease_until=first.lease_until,
        )
    return previous, any(not row.done for row in rows)
