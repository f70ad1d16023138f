"""A worker's claims on turns in the ledger: taking a turn, holding one that waits,
keeping a running one's lease, repeating how an answered one ended.

The rules are the ledger's (`memory.ledger`); this is the worker's side of them, with
the retries and the renewal timing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from agent import topics
from agent.bus.base import EventBus
from agent.errors import EventDecodeError, HeartlineError
from agent.events import UserTurn, decode, encode
from memory.ledger import ClaimOutcome, TurnLedger

__all__ = ["ClaimTimings", "TurnClaims"]

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimTimings:
    lease: float
    gap_timeout: float
    takeover_after: float
    retry_min: float
    retry_max: float


class TurnClaims:
    def __init__(
        self, ledger: TurnLedger, bus: EventBus, *, worker_id: str, timings: ClaimTimings
    ) -> None:
        self._ledger = ledger
        self._bus = bus
        self._worker_id = worker_id
        self._timings = timings

    async def once(self, turn: UserTurn, payload: bytes) -> ClaimOutcome:
        t = self._timings
        return await self._ledger.claim(
            turn.session_id,
            turn.seq,
            payload,
            worker=self._worker_id,
            now=time.time(),
            lease=t.lease,
            gap_timeout=t.gap_timeout,
        )

    async def claim(
        self, turn: UserTurn, payload: bytes, *, earlier_arrived: Callable[[], bool]
    ) -> ClaimOutcome:
        """Claim the turn, waiting while an earlier turn is unfinished or another worker runs it.

        `DONE` for a turn answered already (a duplicate delivery); `WAIT` once
        `earlier_arrived` says an earlier turn of the session reached this worker
        meanwhile (say, taken over from a worker that died) and must run first.
        """
        t = self._timings
        delay = t.retry_min
        while True:
            outcome = await self.once(turn, payload)
            if outcome is ClaimOutcome.CLAIMED or outcome is ClaimOutcome.DONE:
                return outcome
            if earlier_arrived():
                return ClaimOutcome.WAIT
            ceiling = t.retry_max if outcome is ClaimOutcome.WAIT else t.lease / 10
            delay = min(delay * 2, max(ceiling, t.retry_min))
            await asyncio.sleep(delay)

    async def repeat_ending(self, turn: UserTurn) -> None:
        """Publish again how an answered turn ended: it came back because its gateway
        missed the end (cut off from the bus while it went out)."""
        try:
            ending = await self._ledger.ending(turn.session_id, turn.seq)
            if ending is not None:
                await self._bus.publish(topics.reply(turn.session_id), decode(ending))
        except (HeartlineError, EventDecodeError) as exc:
            _log.warning("could not repeat a turn's ending", turn_id=turn.turn_id, error=str(exc))

    async def hold(self, turn: UserTurn) -> None:
        """Take the lease of a turn that waits here behind another: should this worker
        die, the others take it over with the turns it runs, within `takeover_after`."""
        try:
            await self.once(turn, encode(turn))
        except HeartlineError as exc:  # it is claimed in its turn all the same
            _log.debug("could not hold a waiting turn", turn_id=turn.turn_id, error=str(exc))

    async def keep(self, turn: UserTurn, payload: bytes, *, lost: Callable[[], None]) -> None:
        """Keep the turn's lease alive while it runs, however long the reply takes; call
        `lost` and return once another worker has it.

        Renewed often enough that a worker wrongly counted gone (its beats held up,
        not it) learns within `takeover_after` that another took the turn, and stops it.
        """
        t = self._timings
        while True:
            await asyncio.sleep(min(t.lease / 3, t.takeover_after))
            try:
                outcome = await self.once(turn, payload)
            except HeartlineError as exc:
                _log.warning("lease renewal failed", turn_id=turn.turn_id, error=str(exc))
                continue
            if outcome is not ClaimOutcome.CLAIMED:
                _log.warning("lost the lease of a running turn", turn_id=turn.turn_id)
                lost()
                return
