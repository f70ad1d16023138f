"""`SqlConversationStore`: the `ConversationStore` on SQLite or PostgreSQL.

Reads are one or two indexed queries. Writes are write-behind
(`memory.sql.writer`): `record_turn` returns once the record is queued, and a
read may lag the writes by up to one batch interval (`WriterConfig.max_wait`
plus one transaction). The dialogue manager keeps the current conversation in
memory anyway; `flush` waits until everything recorded so far is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, TypeVar

import structlog
from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.errors import StoreError
from agent.values import EmotionReading, Exchange, HistorySummary, SessionMood, Strategy, Trend
from memory.crypto import TextCipher
from memory.records import AnsweredTurn, FeedbackRecord, TurnRecord
from memory.sealing import TenantSealers
from memory.sql.engine import store_errors
from memory.sql.models import (
    MOOD_GROUPS,
    DecisionRow,
    EmotionRow,
    SessionMoodRow,
    SessionRow,
    TurnRow,
    UserLabelRow,
    UserMoodRow,
    UserRow,
)
from memory.sql.units import UnitRunner, open_units
from memory.sql.writer import BatchWriter, WriterConfig, WriterStats

__all__ = ["SqlConversationStore", "session_mood", "trend_of"]

_log = structlog.get_logger(__name__)

RECENT = 5  # dominant labels in `HistorySummary.recent_dominant`
FREQUENT = 3  # labels in `HistorySummary.frequent`
PAST_SESSIONS = 3  # earlier sessions in `HistorySummary.past_sessions`
TREND_WINDOW = 3  # turns on each side of the trend comparison
TRAJECTORY = 2 * TREND_WINDOW  # valences in `HistorySummary.trajectory`
TREND_THRESHOLD = 0.15


class SqlConversationStore:
    """A `ConversationStore` over an engine from `memory.sql.open_engine`.

    One store serves every tenant: each record is written under its own
    tenant, each read names the tenant it reads, and one writer task writes
    batches that may mix them. Message text is stored redacted, and encrypted
    when `cipher` is given, bound to its tenant (`memory.sealing`).

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
        cipher: TextCipher | None = None,
        writer: WriterConfig | None = None,
        session_gap: float = 1800.0,
        drain_timeout: float = 30.0,
    ) -> None:
        self._engine = engine
        self._sealers = TenantSealers(cipher)
        self._config = writer or WriterConfig()
        self._session_gap = session_gap
        self._drain_timeout = drain_timeout
        self._writer: BatchWriter | None = None
        self._reads: UnitRunner | None = None
        self._stack: AsyncExitStack | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SqlConversationStore:
        if self._stack is not None:
            raise RuntimeError("this SqlConversationStore is already running")
        async with AsyncExitStack() as stack:
            writes = open_units(self._engine, write=True, name="heartline-store-writer")
            stack.push_async_callback(writes.aclose)
            self._reads = open_units(self._engine, write=False, name="heartline-store-reader")
            stack.push_async_callback(self._reads.aclose)
            group = await stack.enter_async_context(asyncio.TaskGroup())
            self._writer = BatchWriter(writes, config=self._config, sealers=self._sealers)
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

    async def record_turn(self, record: TurnRecord, *, durable: bool = False) -> None:
        """Queue a turn; waits while the queue is full, and with `durable` until the
        turn is committed. Safe to cancel."""
        writer = self._running_writer()
        number = await writer.record(record)
        if durable:
            await writer.committed(number)

    async def record_feedback(self, record: FeedbackRecord) -> None:
        """Queue a feedback score; waits while the queue is full. Safe to cancel."""
        await self._running_writer().record(record)

    async def flush(self) -> None:
        """Wait until everything recorded so far is committed. Safe to cancel."""
        await self._running_writer().flush()

    def _running_reads(self) -> UnitRunner:
        if self._reads is None or self._stack is None:
            raise StoreError("the store is not running; use it as `async with store:`")
        return self._reads

    def _running_writer(self) -> BatchWriter:
        if self._writer is None or self._stack is None:
            raise StoreError("the store is not running; use it as `async with store:`")
        return self._writer

    # Reads

    async def conversation(
        self, session_id: str, *, limit: int, tenant: str = "default"
    ) -> tuple[Exchange, ...]:
        """The last `limit` exchanges of the session of `tenant`, oldest first. Safe to cancel."""
        if limit <= 0:
            return ()
        asking = {"session": session_id, "tenant": tenant, "limit": limit}
        with store_errors("reading a conversation"):
            rows = await self._running_reads().run(
                lambda conn: conn.execute(_CONVERSATION, asking).all()
            )
        sealer = self._sealers.for_tenant(tenant)
        try:
            return tuple(
                Exchange(
                    text=sealer.open(row.text, user=row.external_id, column="turns.text"),
                    reply=sealer.open(row.reply, user=row.external_id, column="turns.reply"),
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
                    flow_state=row.flow_state,
                )
                for row in reversed(rows)
            )
        except ValueError as exc:
            raise StoreError(f"session {session_id!r} holds an unreadable turn: {exc}") from exc

    async def answered_turns(
        self, session_id: str, *, limit: int, tenant: str = "default"
    ) -> tuple[AnsweredTurn, ...]:
        """The last `limit` turns stored for the session of `tenant`, oldest first. Safe to
        cancel."""
        if limit <= 0:
            return ()
        asking = {"session": session_id, "tenant": tenant, "limit": limit}
        with store_errors("reading a session's answered turns"):
            rows = await self._running_reads().run(
                lambda conn: conn.execute(_ANSWERED, asking).all()
            )
        sealer = self._sealers.for_tenant(tenant)
        try:
            return tuple(
                AnsweredTurn(
                    turn_id=row.turn_id,
                    seq=row.seq,
                    user_id=row.external_id,
                    reply=sealer.open(row.reply, user=row.external_id, column="turns.reply"),
                    interrupted=row.interrupted,
                    generator=row.generator,
                )
                for row in reversed(rows)
            )
        except ValueError as exc:
            raise StoreError(f"session {session_id!r} holds an unreadable turn: {exc}") from exc

    async def history(
        self,
        user_id: str,
        *,
        now: float,
        session_id: str | None = None,
        tenant: str = "default",
    ) -> HistorySummary:
        """The emotional history of `user_id` of `tenant`, over every turn stored so far.

        Safe to cancel. Three indexed reads of a few rows each, however many
        turns the user has: the running totals with the top labels (found by
        tenant and user id), the last turns and the latest earlier sessions
        (by the user's row, which is the tenant's own). `returning` means the user has turns in an
        earlier session: one other than `session_id` when given, else any
        session once there are two, or a single one whose last turn is more
        than `session_gap` seconds before `now`.
        """
        with store_errors("reading a user's history"):
            found = await self._running_reads().run(
                lambda conn: _read_history(conn, tenant, user_id, session_id)
            )
        if found is None:
            return HistorySummary.first_time()
        totals, latest, past = found
        if session_id is not None:
            returning = bool(past)
        else:
            returning = totals.sessions > 1 or now - float(totals.last_at) > self._session_gap
        turns = int(totals.turns)
        valences = [float(row.valence) for row in latest]
        frequent = (totals.label0, totals.label1, totals.label2)
        return HistorySummary(
            returning=returning,
            sessions=int(totals.sessions),
            turns=turns,
            mean_valence=_clamp(float(totals.valence_sum) / turns, -1.0),
            mean_arousal=_clamp(float(totals.arousal_sum) / turns, 0.0),
            frequent=tuple(label for label in frequent if label is not None),
            recent_dominant=tuple(row.dominant for row in latest[:RECENT]),
            trajectory=tuple(reversed(valences)),
            trend=trend_of(valences),
            past_sessions=tuple(session_mood(row) for row in past),
        )


# Built once: building a statement costs about as much as running it.

_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


def _newest_turns_first(query: _Query) -> _Query:
    """`query` (turns joined to their users), for one session of one tenant, newest
    first, `limit` of them."""
    return (
        query.where(
            TurnRow.session_id == bindparam("session"), UserRow.tenant == bindparam("tenant")
        )
        .order_by(TurnRow.seq.desc())
        .limit(bindparam("limit"))
    )


_CONVERSATION = _newest_turns_first(
    select(
        UserRow.external_id,
        TurnRow.text,
        TurnRow.reply,
        EmotionRow.scores,
        EmotionRow.dominant,
        EmotionRow.valence,
        EmotionRow.arousal,
        EmotionRow.intensity,
        EmotionRow.model,
        DecisionRow.strategy,
        TurnRow.flow_state,
    )
    .join(UserRow, UserRow.id == TurnRow.user_id)
    .outerjoin(EmotionRow, EmotionRow.turn_id == TurnRow.id)
    .outerjoin(DecisionRow, DecisionRow.turn_id == TurnRow.id)
)
_ANSWERED = _newest_turns_first(
    select(
        UserRow.external_id,
        TurnRow.turn_id,
        TurnRow.seq,
        TurnRow.reply,
        TurnRow.interrupted,
        TurnRow.generator,
    ).join(UserRow, UserRow.id == TurnRow.user_id)
)


# The history's three reads, built once: the user's totals with their session
# count and top labels, the last turns, and the latest other sessions.
def _top_label(rank: int) -> Any:
    return (
        select(UserLabelRow.label)
        .where(UserLabelRow.user_id == UserRow.id)
        .order_by(UserLabelRow.count.desc(), UserLabelRow.label)
        .limit(1)
        .offset(rank)
        .scalar_subquery()
        .label(f"label{rank}")
    )


_TOTALS = (
    select(
        UserRow.id,
        select(func.count())
        .select_from(SessionRow)
        .where(SessionRow.user_id == UserRow.id)
        .scalar_subquery()
        .label("sessions"),
        *(_top_label(rank) for rank in range(FREQUENT)),
        UserMoodRow.turns,
        UserMoodRow.valence_sum,
        UserMoodRow.arousal_sum,
        UserMoodRow.last_at,
    )
    .outerjoin(UserMoodRow, UserMoodRow.user_id == UserRow.id)
    .where(UserRow.tenant == bindparam("tenant"), UserRow.external_id == bindparam("user"))
)
_LATEST = (
    select(EmotionRow.dominant, EmotionRow.valence)
    .select_from(TurnRow)
    .join(EmotionRow, EmotionRow.turn_id == TurnRow.id)
    .where(TurnRow.user_id == bindparam("user_id"))
    .order_by(TurnRow.created_at.desc(), TurnRow.id.desc())
    .limit(TRAJECTORY)
)
_PAST = (
    select(SessionMoodRow)
    .where(
        SessionMoodRow.user_id == bindparam("user_id"),
        SessionMoodRow.session_id != bindparam("session"),
    )
    .order_by(SessionMoodRow.last_at.desc())
    .limit(PAST_SESSIONS)
)


def _read_history(
    conn: Connection, tenant: str, user_id: str, session_id: str | None
) -> tuple[Row[Any], Sequence[Any], Sequence[Any]] | None:
    """The user's running totals, last turns and earlier sessions; None for a new user."""
    totals = conn.execute(_TOTALS, {"tenant": tenant, "user": user_id}).one_or_none()
    if totals is None or totals.turns is None:
        return None
    latest = conn.execute(_LATEST, {"user_id": totals.id}).all()
    # Session ids are never empty, so "" leaves out no session.
    past = conn.execute(_PAST, {"user_id": totals.id, "session": session_id or ""}).all()
    return totals, latest, past


def session_mood(row: Any) -> SessionMood:
    """A session's mood from its totals: its most frequent non-neutral group, if that
    was the dominant emotion of at least a third of its turns, else neutral."""
    counts = {group: int(getattr(row, group)) for group in MOOD_GROUPS if group != "neutral"}
    group = max(counts, key=lambda g: counts[g])
    turns = int(row.turns)
    return SessionMood(
        turns=turns,
        mood=group if 3 * counts[group] >= turns and counts[group] else "neutral",
        mean_valence=_clamp(float(row.valence_sum) / turns, -1.0),
        ended_at=float(row.last_at),
    )


def _clamp(value: float, low: float) -> float:
    """Sums of floats can land a hair outside the range their mean must lie in."""
    return max(low, min(1.0, value))


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
