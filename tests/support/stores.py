"""A ConversationStore double kept in lists, for tests of the runtime core."""

from __future__ import annotations

import asyncio

from agent.values import Exchange, HistorySummary
from memory.records import AnsweredTurn, FeedbackRecord, TurnRecord


class ListStore:
    def __init__(self) -> None:
        self.turns: list[TurnRecord] = []
        self.feedback: list[FeedbackRecord] = []
        self.changed = asyncio.Event()

    async def conversation(
        self, session_id: str, *, limit: int, tenant: str = "default"
    ) -> tuple[Exchange, ...]:
        mine = [t for t in self.turns if (t.tenant, t.session_id) == (tenant, session_id)][-limit:]
        return tuple(
            Exchange(text=t.text, reply=t.reply, emotion=t.emotion, strategy=t.decision.strategy)
            for t in mine
        )

    async def answered_turns(
        self, session_id: str, *, limit: int, tenant: str = "default"
    ) -> tuple[AnsweredTurn, ...]:
        mine = [t for t in self.turns if (t.tenant, t.session_id) == (tenant, session_id)]
        return tuple(
            AnsweredTurn(
                turn_id=t.turn_id,
                seq=t.seq,
                user_id=t.user_id,
                reply=t.reply,
                interrupted=t.interrupted,
                generator=t.generator,
            )
            for t in sorted(mine, key=lambda t: t.seq)[-limit:]
        )

    async def history(
        self,
        user_id: str,
        *,
        now: float,
        session_id: str | None = None,
        tenant: str = "default",
    ) -> HistorySummary:
        mine = [t for t in self.turns if (t.tenant, t.user_id) == (tenant, user_id)]
        sessions = {t.session_id for t in mine}
        return HistorySummary(
            returning=bool(sessions - {session_id}), sessions=len(sessions), turns=len(mine)
        )

    async def record_turn(self, record: TurnRecord, *, durable: bool = False) -> None:
        self.turns.append(record)
        self.changed.set()

    async def record_feedback(self, record: FeedbackRecord) -> None:
        self.feedback.append(record)
        self.changed.set()

    async def flush(self) -> None:
        return None
