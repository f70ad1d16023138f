"""Write-behind for the conversation store: a bounded buffer and one writer task.

`record` appends to a bounded buffer and returns; when the buffer is full it
waits for space (backpressure: nothing is ever dropped). The writer takes up to
`max_batch` records, or whatever arrived within `max_wait` of the first, and
writes them in one transaction with bulk inserts (`memory.sql.batch`). While the
database is unreachable (`memory.sql.engine.database_unreachable`: down, restarting,
cut off) a batch is retried for as long as it takes, with a backoff doubling from
`backoff` to `max_backoff`; meanwhile the buffer fills and then `record` waits, which
pauses the turns, and nothing is lost. Any other failure is retried `max_attempts`
times; then the writer stops with `StoreError`, which `record`, `flush` and the
writer task itself raise from then on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import structlog

from agent.errors import StoreError
from memory.records import FeedbackRecord, TurnRecord
from memory.sealing import TenantSealers
from memory.sql.batch import write_batch
from memory.sql.engine import database_unreachable
from memory.sql.units import UnitRunner

__all__ = ["BatchWriter", "WriterConfig", "WriterStats"]

_log = structlog.get_logger(__name__)

Record = TurnRecord | FeedbackRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterConfig:
    # Limits
    max_queue: int = 10_000
    max_batch: int = 256
    max_attempts: int = 5
    # Timeouts
    max_wait: float = 0.020
    backoff: float = 0.050
    max_backoff: float = 2.0

    def __post_init__(self) -> None:
        if self.max_queue < 1 or self.max_batch < 1 or self.max_attempts < 1:
            raise ValueError("max_queue, max_batch and max_attempts must be at least 1")
        if self.max_wait < 0 or self.backoff < 0 or self.max_backoff < self.backoff:
            raise ValueError("max_wait and backoff must not be negative, nor above max_backoff")


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterStats:
    """Counters since the writer started."""

    queued: int
    committed: int
    batches: int
    retries: int


class BatchWriter:
    """Buffers records and writes them in batches; `run` is the writer task."""

    def __init__(self, units: UnitRunner, *, config: WriterConfig, sealers: TenantSealers) -> None:
        """`units`: write transactions (`open_units` with `write`), the caller's to close."""
        self._units = units
        self._sealers = sealers
        self._config = config
        self._buffer: deque[Record] = deque()
        self._changed = asyncio.Condition()
        self._accepted = 0  # records ever accepted
        self._committed = 0  # records ever committed (or taken by a failed batch)
        self._batches = 0
        self._retries = 0
        self._flushing = 0
        self._closing = False
        self._error: StoreError | None = None

    @property
    def stats(self) -> WriterStats:
        return WriterStats(
            queued=len(self._buffer),
            committed=self._committed,
            batches=self._batches,
            retries=self._retries,
        )

    async def record(self, record: Record) -> int:
        """Queue `record`, waiting while the buffer is full; its number, for `committed`.

        Safe to cancel (nothing queued).
        """
        async with self._changed:
            await self._changed.wait_for(
                lambda: len(self._buffer) < self._config.max_queue or self._stopped()
            )
            self._raise_if_stopped()
            self._buffer.append(record)
            self._accepted += 1
            self._changed.notify_all()
            return self._accepted

    async def committed(self, number: int) -> None:
        """Wait until record `number` (from `record`) is committed, in its batch as any
        other. Raises the writer's `StoreError` if it stopped. Safe to cancel."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._committed >= number or self._error is not None
            )
            if self._error is not None:
                raise self._error

    async def flush(self) -> None:
        """Wait until every record accepted so far is committed. Safe to cancel."""
        async with self._changed:
            target = self._accepted
            self._flushing += 1
            self._changed.notify_all()
            try:
                await self._changed.wait_for(
                    lambda: self._committed >= target or self._error is not None
                )
            finally:
                self._flushing -= 1
            if self._error is not None:
                raise self._error

    async def close(self) -> None:
        """Accept no more records; `run` returns once the buffer is written."""
        async with self._changed:
            self._closing = True
            self._changed.notify_all()

    async def run(self) -> None:
        """The writer task: returns after `close` once the buffer is empty.

        Raises `StoreError` when a batch still fails after every retry.
        """
        while (batch := await self._take()) is not None:
            try:
                await self._write_with_retries(batch)
            except Exception as exc:
                error = (
                    exc
                    if isinstance(exc, StoreError)
                    else StoreError(f"the store's writer crashed: {exc!r}")
                )
                async with self._changed:
                    self._error = error
                    self._changed.notify_all()
                _log.error(
                    "store.writer_failed",
                    lost=len(batch) + len(self._buffer),
                    error=str(error),
                )
                if error is exc:
                    raise
                raise error from exc
            async with self._changed:
                self._committed += len(batch)
                self._batches += 1
                self._changed.notify_all()

    def _stopped(self) -> bool:
        return self._closing or self._error is not None

    def _raise_if_stopped(self) -> None:
        if self._error is not None:
            raise StoreError("the store's writer has failed; records are no longer accepted") from (
                self._error
            )
        if self._closing:
            raise StoreError("the store is closed; records are no longer accepted")

    async def _take(self) -> list[Record] | None:
        config = self._config
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._buffer) or self._closing)
            if not self._buffer:
                return None
            if len(self._buffer) < config.max_batch and not self._closing and not self._flushing:
                try:
                    async with asyncio.timeout(config.max_wait):
                        await self._changed.wait_for(
                            lambda: (
                                len(self._buffer) >= config.max_batch
                                or self._closing
                                or self._flushing > 0
                            )
                        )
                except TimeoutError:
                    pass
            size = min(len(self._buffer), config.max_batch)
            batch = [self._buffer.popleft() for _ in range(size)]
            self._changed.notify_all()  # room for waiting writers
            return batch

    async def _write_with_retries(self, batch: list[Record]) -> None:
        config = self._config
        attempt = failures = 0  # failures: those not of an unreachable database
        delay = config.backoff
        while True:
            attempt += 1
            try:
                await write_batch(self._units, batch, sealers=self._sealers)
                return
            except (StoreError, TimeoutError) as exc:
                unreachable = database_unreachable(exc)
                failures += not unreachable
                if failures == config.max_attempts:
                    raise StoreError(
                        f"writing a batch of {len(batch)} records failed "
                        f"{failures} times; last error: {exc}"
                    ) from exc
                _log.warning(
                    "store.batch_retry",
                    attempt=attempt,
                    records=len(batch),
                    unreachable=unreachable,
                    retry_in=delay,
                    error=str(exc),
                )
                self._retries += 1
                await asyncio.sleep(delay)
                delay = min(2 * delay, config.max_backoff)
