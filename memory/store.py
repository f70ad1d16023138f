"""The `ConversationStore` seam: what the dialogue manager reads and writes."""

from __future__ import annotations

from typing import Protocol

from agent.values import Exchange, HistorySummary
from memory.records import AnsweredTurn, FeedbackRecord, TurnRecord

__all__ = ["ConversationStore"]


class ConversationStore(Protocol):
    """Conversations and emotional histories, kept per tenant.

    A user id names a user within a tenant: the same id in two tenants is two
    users, and a read sees only the rows of the tenant it names. Records carry
    their own tenant.
    """

    async def conversation(
        self, session_id: str, *, limit: int, tenant: str = "default"
    ) -> tuple[Exchange, ...]:
        """The last `limit` exchanges of this session of `tenant`, oldest first."""
        ...

    async def answered_turns(
        self, session_id: str, *, limit: int, tenant: str = "default"
    ) -> tuple[AnsweredTurn, ...]:
        """The last `limit` answered turns of this session of `tenant`, oldest first:
        what a client resuming the session may have missed."""
        ...

    async def history(
        self,
        user_id: str,
        *,
        now: float,
        session_id: str | None = None,
        tenant: str = "default",
    ) -> HistorySummary:
        """The emotional history of `user_id` of `tenant` across sessions, as of `now`.

        With `session_id` (the session asking), "returning" means the user has
        turns in another session.
        """
        ...

    async def record_turn(self, record: TurnRecord, *, durable: bool = False) -> None:
        """Keep a turn, under `record.tenant`.

        May return before it is durable (write-behind; see `flush`), unless `durable`:
        then it returns once the turn is committed, for what a client is about to be
        told is answered must survive a crash.
        """
        ...

    async def record_feedback(self, record: FeedbackRecord) -> None:
        """Keep a feedback score. Same durability as `record_turn`."""
        ...

    async def flush(self) -> None:
        """Wait until everything recorded so far is durable."""
        ...
