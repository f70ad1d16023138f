"""Sessions that clients resume: the workers tell a gateway what became of their turns.

A gateway that did not serve a session before (its gateway died, or the client's
connection dropped) asks about it with a `SessionLookup`; one worker of the group
answers from the database and the turn ledger (`SessionFound`): the session's last
turn number, its newest answered turns and those still unfinished. A session that is
unknown, or is another user's, is not found: nothing says that it exists.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import structlog

from agent import topics
from agent.bus.base import EventBus
from agent.dialogue.recovery import ledger_turns
from agent.errors import BusError, HeartlineError
from agent.events import (
    MAX_RESUMED_TURNS,
    ReplyEnded,
    SessionFound,
    SessionLookup,
)
from memory.ledger import LedgerSession, TurnLedger
from memory.records import AnsweredTurn
from memory.store import ConversationStore

__all__ = ["serve_session_lookups", "session_found"]

_log = structlog.get_logger(__name__)


def session_found(
    lookup: SessionLookup, answered: Sequence[AnsweredTurn], ledger: LedgerSession
) -> SessionFound:
    """The answer to `lookup`, from the session's stored turns and its ledger entries."""
    unfinished = ledger_turns(ledger.unfinished)
    owners = {t.user_id for t in answered} | {t.user_id for t in unfinished}
    tenants = {t.tenant for t in unfinished}
    if owners != {lookup.user_id} or not tenants <= {lookup.tenant}:
        return SessionFound(request_id=lookup.request_id, session_id=lookup.session_id, found=False)
    newest = answered[-MAX_RESUMED_TURNS:]
    return SessionFound(
        request_id=lookup.request_id,
        session_id=lookup.session_id,
        found=True,
        last_seq=max([ledger.last_seq, *(t.seq for t in answered)]),
        answered=tuple(
            ReplyEnded(
                session_id=lookup.session_id,
                turn_id=t.turn_id,
                text=t.reply,
                interrupted=t.interrupted,
                generator=t.generator,
                ttft_ms=0.0,
                total_ms=0.0,
            )
            for t in newest
        ),
        unfinished=tuple(unfinished[:MAX_RESUMED_TURNS]),
    )


@asynccontextmanager
async def serve_session_lookups(
    bus: EventBus, store: ConversationStore, ledger: TurnLedger, *, group: str
) -> AsyncIterator[None]:
    """Answer the gateways' session lookups for the duration of the block."""

    async def answer(lookup: SessionLookup) -> SessionFound:
        answered = await store.answered_turns(
            lookup.session_id, limit=MAX_RESUMED_TURNS, tenant=lookup.tenant
        )
        found = session_found(lookup, answered, await ledger.session(lookup.session_id))
        if found.found:
            await ledger.resume(lookup.session_id, after=found.last_seq, now=time.time())
        _log.info("session looked up", session_id=lookup.session_id, found=found.found)
        return found

    async def take() -> None:
        async with bus.subscribe(topics.SESSION_LOOKUPS, group=group) as lookups:
            async for delivery in lookups:
                if not isinstance(lookup := delivery.event, SessionLookup):
                    continue
                try:
                    found = await answer(lookup)
                except HeartlineError as exc:  # the gateway gives up waiting: a new session
                    _log.warning("session lookup failed", error=str(exc))
                    continue
                try:
                    await bus.publish(topics.session_found(lookup.reply_to), found)
                except BusError as exc:
                    _log.warning("session lookup answer not delivered", error=str(exc))

    async with asyncio.TaskGroup() as tasks:
        taking = tasks.create_task(take())
        try:
            yield
        finally:
            taking.cancel()
