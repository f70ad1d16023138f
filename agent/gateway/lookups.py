"""Resuming a session: the gateway asks the workers what became of its turns.

A client that lost its connection (its gateway died, or the network dropped)
reconnects naming its session; `find` asks the workers over the bus and answers with
what they know, or None when the session cannot be resumed: unknown, another user's,
or no worker answered in time. The client then gets a new session instead.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog

from agent import topics
from agent.bus.base import EventBus
from agent.errors import BusError
from agent.events import SessionFound, SessionLookup
from agent.gateway.answers import Answers, listening
from agent.gateway.roster import Availability

__all__ = ["SessionLookups", "session_lookups"]

_log = structlog.get_logger(__name__)

_SESSION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # what the bus takes as a session id


class SessionLookups:
    def __init__(
        self, answers: Answers[SessionFound], *, workers: Callable[[], Availability]
    ) -> None:
        self._answers = answers
        self._workers = workers

    async def find(self, session_id: str, *, user_id: str, tenant: str) -> SessionFound | None:
        """What the workers know of `user_id`'s session `session_id`; None if it cannot
        be resumed. Safe to cancel."""
        if not _SESSION_ID.fullmatch(session_id) or self._workers() is Availability.NONE:
            return None

        def lookup(request_id: str, reply_to: str) -> SessionLookup:
            return SessionLookup(
                request_id=request_id,
                reply_to=reply_to,
                session_id=session_id,
                user_id=user_id,
                tenant=tenant,
            )

        try:
            found = await self._answers.ask(topics.SESSION_LOOKUPS, lookup)
        except (TimeoutError, BusError) as exc:
            _log.warning("session lookup unanswered", session_id=session_id, error=repr(exc))
            return None
        return found if found.found else None


@asynccontextmanager
async def session_lookups(
    bus: EventBus, *, workers: Callable[[], Availability], timeout_s: float = 5.0
) -> AsyncIterator[SessionLookups]:
    """`SessionLookups` listening on this gateway's own answer topic for the block."""
    async with listening(bus, SessionFound, topics.session_found, timeout_s=timeout_s) as answers:
        yield SessionLookups(answers, workers=workers)
