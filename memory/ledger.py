"""The turn ledger: each turn of a session runs exactly once and in order.

Several workers may receive turns of one session (MQTT shared subscriptions
spread messages, not sessions). Before running turn `seq` a worker claims it:

- `CLAIMED`  run it now; the ledger holds the payload and a lease.
- `DONE`     already answered: drop it.
- `BUSY`     another worker runs it under a live lease: try again shortly (if
             that worker dies, the lease runs out and this copy takes over).
- `WAIT`     an earlier turn of the session is unfinished: try again shortly.
             The worker holds the lease meanwhile: the turn is its to run next.

The owner renews its lease by claiming again while it runs the turn or waits
for it. A worker that dies holding a turn, running or waiting, stops renewing:
its lease runs out, and `reclaimable` hands the stored payload to whichever
worker sweeps next. Workers that see it stop
beating need not wait for that: `release` ends its leases at once. A turn whose predecessor
never arrived waits at most `gap_timeout` seconds. A finished turn keeps its
ending (its last event, encoded) instead of its payload: a worker that gets the
turn once more (its gateway missed the end and published it again) publishes the
ending again rather than leaving the turn unanswered. Once a session closed,
`forget_session` lets go of what only its later turns would need.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

__all__ = [
    "ClaimOutcome",
    "InMemoryTurnLedger",
    "LedgerEntry",
    "LedgerSession",
    "TurnLedger",
    "decide_claim",
    "takes_lease",
]


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"
    DONE = "done"
    BUSY = "busy"
    WAIT = "wait"


@dataclass(slots=True)
class LedgerEntry:
    payload: bytes
    first_seen: float
    done: bool = False
    owner: str | None = None
    lease_until: float = 0.0


@dataclass(frozen=True, slots=True)
class LedgerSession:
    """The highest turn number the ledger holds for a session (answered, failed or
    skipped: the next turn must come after it), and its unfinished turns' payloads."""

    last_seq: int
    unfinished: list[bytes]


class TurnLedger(Protocol):
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
    ) -> ClaimOutcome: ...

    async def complete(
        self, session_id: str, seq: int, *, worker: str, ending: bytes = b""
    ) -> None: ...

    async def ending(self, session_id: str, seq: int) -> bytes | None:
        """The ending a finished turn was completed with; None if unknown or unfinished."""
        ...

    async def reclaimable(self, *, now: float, limit: int) -> list[bytes]:
        """Payloads of claimed turns whose lease has expired."""
        ...

    async def session(self, session_id: str) -> LedgerSession:
        """What the ledger knows of a session a client resumes."""
        ...

    async def resume(self, session_id: str, *, after: int, now: float) -> None:
        """The session goes on after turn `after`: its next turn need not wait for a
        predecessor the ledger let go of when the session closed."""
        ...

    async def release(self, worker: str) -> int:
        """`worker` is gone: its unfinished turns' leases end now. How many."""
        ...

    async def holders(self, *, now: float) -> set[str]:
        """The workers holding a live lease on an unfinished turn."""
        ...

    async def forget_session(self, session_id: str) -> None:
        """The session closed: drop what only its later turns would need."""
        ...


def decide_claim(
    entry: LedgerEntry,
    previous: LedgerEntry | None,
    earlier_unfinished: bool,
    *,
    seq: int,
    worker: str,
    now: float,
    gap_timeout: float,
) -> ClaimOutcome:
    """The claim rule, shared by every ledger implementation."""
    if entry.done:
        return ClaimOutcome.DONE
    if entry.owner not in (None, worker) and entry.lease_until > now:
        return ClaimOutcome.BUSY
    if earlier_unfinished:
        return ClaimOutcome.WAIT
    if seq > 1 and previous is None and now - entry.first_seen < gap_timeout:
        return ClaimOutcome.WAIT
    return ClaimOutcome.CLAIMED


def takes_lease(outcome: ClaimOutcome) -> bool:
    """Whether a claim with this outcome takes the turn's lease.

    A worker waiting for a turn's predecessors holds the turn as much as one
    running it: should it die, the turn is handed over like a running one,
    not left to its gateway publishing it again seconds later.
    """
    return outcome is ClaimOutcome.CLAIMED or outcome is ClaimOutcome.WAIT


class InMemoryTurnLedger:
    """The ledger of the embedded process, where one worker sees every turn."""

    def __init__(self, *, keep_per_session: int = 64) -> None:
        self._sessions: dict[str, dict[int, LedgerEntry]] = {}
        self._keep = keep_per_session

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
        """Never waits; safe to cancel."""
        entries = self._sessions.setdefault(session_id, {})
        entry = entries.setdefault(seq, LedgerEntry(payload=payload, first_seen=now))
        earlier_unfinished = any(s < seq and not e.done for s, e in entries.items())
        outcome = decide_claim(
            entry,
            entries.get(seq - 1),
            earlier_unfinished,
            seq=seq,
            worker=worker,
            now=now,
            gap_timeout=gap_timeout,
        )
        if takes_lease(outcome):
            entry.owner, entry.lease_until = worker, now + lease
        return outcome

    async def complete(
        self, session_id: str, seq: int, *, worker: str, ending: bytes = b""
    ) -> None:
        entries = self._sessions.get(session_id, {})
        if (entry := entries.get(seq)) is not None and entry.owner == worker:
            entry.done, entry.payload = True, ending
        # Forget old finished turns, keeping the latest so duplicates stay dropped.
        while len(entries) > self._keep and entries[min(entries)].done:
            del entries[min(entries)]

    async def reclaimable(self, *, now: float, limit: int) -> list[bytes]:
        found = [
            entry.payload
            for entries in self._sessions.values()
            for entry in entries.values()
            if not entry.done and entry.owner is not None and entry.lease_until <= now
        ]
        return found[:limit]

    async def session(self, session_id: str) -> LedgerSession:
        entries = self._sessions.get(session_id, {})
        return LedgerSession(
            last_seq=max(entries, default=0),
            unfinished=[entries[seq].payload for seq in sorted(entries) if not entries[seq].done],
        )

    async def resume(self, session_id: str, *, after: int, now: float) -> None:
        if after > 0:
            entries = self._sessions.setdefault(session_id, {})
            entries.setdefault(after, LedgerEntry(payload=b"", first_seen=now, done=True))

    async def ending(self, session_id: str, seq: int) -> bytes | None:
        entry = self._sessions.get(session_id, {}).get(seq)
        return entry.payload if entry is not None and entry.done and entry.payload else None

    async def holders(self, *, now: float) -> set[str]:
        return {
            entry.owner
            for entries in self._sessions.values()
            for entry in entries.values()
            if entry.owner is not None and not entry.done and entry.lease_until > now
        }

    async def release(self, worker: str) -> int:
        released = 0
        for entries in self._sessions.values():
            for entry in entries.values():
                if entry.owner == worker and not entry.done and entry.lease_until > 0.0:
                    entry.lease_until = 0.0
                    released += 1
        return released

    async def forget_session(self, session_id: str) -> None:
        """Drop the session's entries: this worker is the only one that had its turns."""
        self._sessions.pop(session_id, None)
