"""`SqlConversationStore`: the `ConversationStore` on SQLite or PostgreSQL.

Reads are one or two indexed queries. Writes are write-behind
(`memory.sql.writer`): `record_turn` returns once the record is queued, and a
read may lag the writes by up to one batch interval (`WriterConfig.max_wait`
plus one transaction). The dialogue manager keeps the current conversation in
memory anyway; `flush` waits until everything recorded so far is committed.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from types import TracebackType

import structlog
from sqlalchemy import case, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.errors import StoreError
from agent.values import EmotionReading, Exchange, HistorySummary, Strategy, Trend
from memory.records import FeedbackRecord, TurnRecord
from memory.sql.engine import store_errors
from memory.sql.models import DecisionRow, EmotionRow, TurnRow, UserRow
from memory.sql.writer import BatchWriter, WriterConfig, WriterStats

__all__ = ["SqlConversationStore", "trend_of"]

_log = structlog.get_logger(__name__)

RECENT = 5  # dominant labels in `HistorySummary.recent_dominant`
TREND_WINDOW = 3  # turns on each side of the trend comparison
TREND_THRESHOLD = 0.15


class SqlConversationStore:
    """A `ConversationStore` over an engine from `memory.sql.open_engine`.

    Use it as an async context manager: entering starts the writer task,
    leaving writes everything queued (waiting at most `drain_timeout`) and
    stops it. The engine stays the caller's to dispose of. Reusable, not
    reentrant.

    If a batch still fails after the writer's retries, the writer task ends
    with `StoreError`: `record_*` and `flush` raise it from then on, the task
    that entered the store is cancelled (the `asyncio.TaskGroup` rule), and
    leaving the context raises the `StoreError`.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        tenant: str = "default",
        writer: WriterConfig | None = None,
        session_gap: float = 1800.0,
        drain_timeout: float = 30.0,
    ) -> None:
        self._engine = engine
        self._tenant = tenant
        self._config = writer or WriterConfig()
        self._session_gap = session_gap
        self._drain_timeout = drain_timeout
        self._writer: BatchWriter | None = None
        self._stack: AsyncExitStack | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SqlConversationStore:
        if self._stack is not None:
            raise RuntimeError("this SqlConversationStore is already running")
        async with AsyncExitStack() as stack:
            group = await stack.enter_async_context(asyncio.TaskGroup())
            self._writer = BatchWriter(self._engine, tenant=self._tenant, config=self._config)
            self._task = group.create_task(self._writer.run(), name="heartline-store-writer")
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, writer, task = self._stack, self._writer, self._task
        assert stack is not None, "__aexit__ without __aenter__"
        assert writer is not None
        assert task is not None
        self._stack = self._task = None
        await writer.close()
        # Drain before the TaskGroup sees an exception: it would cancel the writer.
        interrupt: BaseException | None = None
        try:
            done, _ = await asyncio.wait({task}, timeout=self._drain_timeout)
            if not done:
                _log.error("store.drain_timeout", unwritten=writer.stats.queued)
        except BaseException as caught:  # cancelled while draining; the TaskGroup sorts it out
            interrupt = caught
        if interrupt is not None:
            exc_type, exc, tb = type(interrupt), interrupt, interrupt.__traceback__
        try:
            await stack.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # Unwrap what the TaskGroup wrapped: the caller's own exception, or ours.
            first = group.exceptions[0]
            if len(group.exceptions) > 1:
                raise
            if first is exc:
                return  # the caller's exception propagates unchanged
            if isinstance(first, StoreError):
                raise first from first.__cause__
            raise
        if interrupt is not None:
            raise interrupt

    @property
    def stats(self) -> WriterStats:
        """The writer's counters (records queued and committed, batches, retries).

        After leaving, the counters of the last run; before the first, all zero.
        """
        if self._writer is None:
            return WriterStats(queued=0, committed=0, batches=0, retries=0)
        return self._writer.stats

    # Writes

    async def record_turn(self, record: TurnRecord) -> None:
        """Queue a turn; waits while the queue is full. Safe to cancel."""
        await self._running_writer().record(record)

    async def record_feedback(self, record: FeedbackRecord) -> None:
        """Queue a feedback score; waits while the queue is full. Safe to cancel."""
        await self._running_writer().record(record)

    async def flush(self) -> None:
        """Wait until everything recorded so far is committed. Safe to cancel."""
        await self._running_writer().flush()

    def _running_writer(self) -> BatchWriter:
        if self._writer is None or self._stack is None:
            raise StoreError("the store is not running; use it as `async with store:`")
        return self._writer

    # Reads

    async def conversation(self, session_id: str, *, limit: int) -> tuple[Exchange, ...]:
        """The last `limit` exchanges of the session, oldest first. Safe to cancel."""
        if limit <= 0:
            return ()
        query = (
            select(
                TurnRow.text,
                TurnRow.reply,
                EmotionRow.scores,
                EmotionRow.dominant,
                EmotionRow.valence,
                EmotionRow.arousal,
                EmotionRow.intensity,
                EmotionRow.model,
                DecisionRow.strategy,
            )
            .outerjoin(EmotionRow, EmotionRow.turn_id == TurnRow.id)
            .outerjoin(DecisionRow, DecisionRow.turn_id == TurnRow.id)
            .where(TurnRow.session_id == session_id)
            .order_by(TurnRow.seq.desc())
            .limit(limit)
        )
        with store_errors("reading a conversation"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        try:
            return tuple(
                Exchange(
                    text=row.text,
                    reply=row.reply,
                    emotion=None
                    if row.dominant is None
                    else EmotionReading(
                        scores={str(k): float(v) for k, v in row.scores.items()},
                        dominant=row.dominant,
                        valence=float(row.valence),
                        arousal=float(row.arousal),
                        intensity=float(row.intensity),
                        model=row.model,
                    ),
                    strategy=None if row.strategy is None else Strategy(row.strategy),
                )
                for row in reversed(rows)
            )
        except ValueError as exc:
            raise StoreError(f"session {session_id!r} holds an unreadable turn: {exc}") from exc

    async def history(
        self, user_id: str, *, now: float, session_id: str | None = None
    ) -> HistorySummary:
        """The user's emotional history from turns made up to `now`. Safe to cancel.

        `returning` means the user has turns in an earlier session: one other
        than `session_id` when given, else any session once there are two, or
        a single one whose last turn is more than `session_gap` seconds old.
        """
        mine = (
            select(TurnRow.id, TurnRow.session_id, TurnRow.created_at)
            .join(UserRow, UserRow.id == TurnRow.user_id)
            .where(
                UserRow.tenant == self._tenant,
                UserRow.external_id == user_id,
                TurnRow.created_at <= now,
            )
            .subquery()
        )
        others = (
            func.count(distinct(case((mine.c.session_id != session_id, mine.c.session_id))))
            if session_id is not None
            else func.count(distinct(mine.c.session_id))
        )
        totals = select(
            func.count(),
            func.count(distinct(mine.c.session_id)),
            others,
            func.avg(EmotionRow.valence),
            func.max(mine.c.created_at),
        ).select_from(mine.join(EmotionRow, EmotionRow.turn_id == mine.c.id))
        recent = (
            select(EmotionRow.dominant, EmotionRow.valence)
            .select_from(mine.join(EmotionRow, EmotionRow.turn_id == mine.c.id))
            .order_by(mine.c.created_at.desc(), mine.c.id.desc())
            .limit(2 * TREND_WINDOW)
        )
        with store_errors("reading a user's history"):
            async with self._engine.connect() as conn:
                turns, sessions, other_sessions, mean, last_at = (await conn.execute(totals)).one()
                latest = (await conn.execute(recent)).all()
        if not turns:
            return HistorySummary.first_time()
        if session_id is not None:
            returning = other_sessions > 0
        else:
            returning = sessions > 1 or now - float(last_at) > self._session_gap
        return HistorySummary(
            returning=returning,
            sessions=int(sessions),
            turns=int(turns),
            mean_valence=max(-1.0, min(1.0, float(mean))),
            recent_dominant=tuple(row.dominant for row in latest[:RECENT]),
            trend=trend_of([float(row.valence) for row in latest]),
        )


def trend_of(valences_newest_first: list[float]) -> Trend:
    """Mean valence of the last 3 turns against the (up to) 3 before them."""
    if len(valences_newest_first) < TREND_WINDOW + 1:
        return Trend.UNKNOWN
    last = valences_newest_first[:TREND_WINDOW]
    before = valences_newest_first[TREND_WINDOW : 2 * TREND_WINDOW]
    change = sum(last) / len(last) - sum(before) / len(before)
    if change > TREND_THRESHOLD:
        return Trend.RECOVERING
    if change < -TREND_THRESHOLD:
        return Trend.DETERIORATING
    return Trend.STABLE
