"""The `ConversationStore` seam: what the dialogue manager reads and writes."""

from __future__ import annotations

from typing import Protocol

from agent.values import Exchange, HistorySummary
from memory.records import FeedbackRecord, TurnRecord

__all__ = ["ConversationStore"]


class ConversationStore(Protocol):
    async def conversation(self, session_id: str, *, limit: int) -> tuple[Exchange, ...]:
        """The last `limit` exchanges of this session, oldest first."""
        ...

    async def history(
        self, user_id: str, *, now: float, session_id: str | None = None
    ) -> HistorySummary:
        """The user's emotional history across sessions, as of `now`.

        With `session_id` (the session asking), "returning" means the user has
        turns in another session.
        """
        ...

    async def record_turn(self, record: TurnRecord) -> None:
        """Keep a turn. May return before it is durable (write-behind); see `flush`."""
        ...

    async def record_feedback(self, record: FeedbackRecord) -> None:
        """Keep a feedback score. Same durability as `record_turn`."""
        ...

    async def flush(self) -> None:
        """Wait until everything recorded so far is durable."""
        ...
