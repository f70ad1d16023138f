"""Turns whose worker can no longer finish them, brought back to a worker that can.

A worker that dies holds its claimed turns in the ledger under leases. They come back
two ways: the periodic sweep hands out turns whose lease ran out, and a worker that
sees a lease holder stop beating (`agent.dialogue.departures`) ends its leases at once
and sweeps. A worker that stops cleanly lets go of what it could not finish itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

import structlog

from agent.bus.base import Subscription
from agent.dialogue.departures import Departures
from agent.errors import BusClosedError, EventDecodeError, HeartlineError
from agent.events import UserTurn, WorkerBeat, decode
from memory.ledger import TurnLedger

__all__ = ["TurnRecovery", "ledger_turns"]

_log = structlog.get_logger(__name__)


def ledger_turns(payloads: Iterable[bytes]) -> list[UserTurn]:
    """The turns in a ledger's payloads; one that cannot be read is logged and left out."""
    turns = []
    for payload in payloads:
        try:
            event = decode(payload)
        except EventDecodeError as exc:
            _log.error("unreadable turn in the ledger", error=str(exc))
            continue
        if isinstance(event, UserTurn):
            turns.append(event)
    return turns


class TurnRecovery:
    """Run `sweep` and `follow_workers` as tasks; `enqueue` takes each turn brought back."""

    def __init__(
        self,
        ledger: TurnLedger,
        *,
        worker_id: str,
        enqueue: Callable[[UserTurn], None],
        takeover_after: float,
        sweep_interval: float,
        connected_since: Callable[[], float | None] | None = None,
    ) -> None:
        """`connected_since`: since when (`time.monotonic()`) the bus has heard beats
        without a break, None while it cannot; left out for a bus that is never cut off."""
        self._connected_since = connected_since
        self._ledger = ledger
        self._worker_id = worker_id
        self._enqueue = enqueue
        self._takeover_after = takeover_after
        self._sweep_interval = sweep_interval
        self._sweep_now = asyncio.Event()

    async def follow_workers(self, beats: Subscription) -> None:
        """Count the other workers' beats; take over the turns of a holder that stopped."""
        clock = time.monotonic
        window = self._takeover_after
        departures = Departures(me=self._worker_id, window=window)
        started = clock()
        next_check = started + window / 2
        while True:
            try:
                async with asyncio.timeout(max(0.0, next_check - clock())):
                    delivery = await beats.get()
            except TimeoutError:
                since = self._listening_since(started)
                await self._check_holders(departures, listening_since=since)
                next_check = clock() + window / 2
            except BusClosedError:
                return
            else:
                if isinstance(delivery.event, WorkerBeat):
                    departures.beat(delivery.event, now=clock())

    def _listening_since(self, started: float) -> float | None:
        if self._connected_since is None:
            return started
        connected = self._connected_since()
        return None if connected is None else max(started, connected)

    async def sweep(self) -> None:
        """Hand out turns whose lease ran out, or was ended because their holder stopped
        beating (then at once)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._sweep_interval):
                    await self._sweep_now.wait()
            self._sweep_now.clear()
            try:
                payloads = await self._ledger.reclaimable(now=time.time(), limit=100)
            except HeartlineError as exc:
                _log.warning("ledger sweep failed", error=str(exc))
                continue
            for turn in ledger_turns(payloads):
                _log.warning(
                    "resuming a turn whose worker stopped",
                    session_id=turn.session_id,
                    turn_id=turn.turn_id,
                )
                self._enqueue(turn)

    async def let_go_of_unfinished(self) -> None:
        """Turns this worker claimed and could not finish go to the others now, not when
        their leases end."""
        try:
            released = await self._ledger.release(self._worker_id)
        except HeartlineError as exc:
            _log.warning("unfinished turns kept until their leases end", error=str(exc))
            return
        if released:
            _log.warning("unfinished turns left to other workers", count=released)

    async def _check_holders(
        self, departures: Departures, *, listening_since: float | None
    ) -> None:
        try:
            holders = await self._ledger.holders(now=time.time())
        except HeartlineError as exc:
            _log.warning("could not list the workers holding turns", error=str(exc))
            return
        gone = departures.gone(holders, now=time.monotonic(), listening_since=listening_since)
        for worker in gone:
            await self._take_over(worker)

    async def _take_over(self, worker: str) -> None:
        """End the leases of a worker that stopped beating; sweep its turns in at once."""
        try:
            released = await self._ledger.release(worker)
        except HeartlineError as exc:
            _log.warning("a silent worker's turns wait for their leases", error=str(exc))
            return
        _log.warning(
            "a worker stopped beating; taking its turns over", worker=worker, turns=released
        )
        self._sweep_now.set()
