"""Micro-batching: concurrent reads grouped into one model call on a worker thread.

A neural model reads 32 texts in little more time than one, so turns that
arrive together should share a forward pass. `MicroBatcher` wraps a blocking
`EmotionModel` into an async `EmotionRecognizer`:

* Callers' texts wait in a FIFO; one worker task takes a batch of at most
  `max_batch` texts and runs `model.predict` on a dedicated single thread, so
  inference never runs on the event loop and model calls never overlap.
* A lone read is sent at once: after one pass of the event loop (which lets
  callers started together join), a batch of one request goes without
  waiting. Once a batch has company, it lingers up to `max_wait` for more,
  until it is full. Under load, batches also form by themselves while the
  model is busy with the previous one.
* Overflow: at most `max_queued` requests (chunks of up to `max_batch` texts)
  wait or run at once; further callers wait for a slot. The caller's own
  timeout (the pipeline's `emotion_timeout`) bounds that wait.
* A model exception fails the callers of that batch only, with
  `StageError("emotion", ...)`; the worker goes on with the next batch.
* A caller cancelled while waiting drops out of its batch; the others still
  get their readings.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType

from agent.emotion.base import EmotionModel
from agent.errors import StageError
from agent.values import EmotionReading

__all__ = ["BatchSettings", "MicroBatcher"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchSettings:
    # Limits
    max_batch: int = 32
    max_queued: int = 256
    # Timeouts
    max_wait: float = 0.002

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_queued < 1:
            raise ValueError("max_batch and max_queued must be at least 1")
        if self.max_wait < 0:
            raise ValueError("max_wait must not be negative")


@dataclass(slots=True)
class _Request:
    texts: Sequence[str]
    future: asyncio.Future[list[EmotionReading]]


@dataclass(slots=True)
class _Running:
    """The state of one `async with` of the batcher."""

    executor: ThreadPoolExecutor
    slots: asyncio.Semaphore
    pending: deque[_Request] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False


class MicroBatcher:
    """An `EmotionRecognizer` over an `EmotionModel`; an async context manager owning its task.

    Reusable, not reentrant. Leaving it lets the batch in progress finish and
    fails the reads still waiting with `StageError`.
    """

    def __init__(self, model: EmotionModel, *, settings: BatchSettings | None = None) -> None:
        self._model = model
        self._settings = settings or BatchSettings()
        self._running: _Running | None = None
        self._stack = contextlib.AsyncExitStack()

    @property
    def name(self) -> str:
        return self._model.name

    async def __aenter__(self) -> MicroBatcher:
        if self._running is not None:
            raise RuntimeError("MicroBatcher is already running")
        running = _Running(
            executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="emotion-model"),
            slots=asyncio.Semaphore(self._settings.max_queued),
        )
        group = await self._stack.enter_async_context(asyncio.TaskGroup())
        group.create_task(self._serve(running))
        self._running = running
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        running, self._running = self._running, None
        if running is None:
            return
        running.closed = True
        while running.pending:
            _fail(running.pending.popleft(), "the emotion batcher closed before reading this")
        running.arrived.set()
        try:
            await self._stack.aclose()  # the worker finishes its batch and stops
        finally:
            await asyncio.to_thread(running.executor.shutdown, wait=True)

    async def read_batch(self, texts: Sequence[str]) -> list[EmotionReading]:
        """One reading per text, in order, read with other callers' texts.

        Safe to cancel: the texts drop out of their batch. Raises `StageError`
        when the model fails or the batcher closes first.
        """
        running = self._running
        if running is None:
            raise RuntimeError("MicroBatcher is not running; use it in `async with`")
        size = self._settings.max_batch
        futures: list[asyncio.Future[list[EmotionReading]]] = []
        try:
            for start in range(0, len(texts), size):
                futures.append(await self._submit(running, texts[start : start + size]))
            readings: list[EmotionReading] = []
            for future in futures:
                readings.extend(await future)
            return readings
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    future.exception()  # retrieved: a failed chunk fails the whole call

    async def _submit(
        self, running: _Running, texts: Sequence[str]
    ) -> asyncio.Future[list[EmotionReading]]:
        await running.slots.acquire()
        if running.closed:
            running.slots.release()
            raise StageError("emotion", "the emotion batcher is closed")
        future: asyncio.Future[list[EmotionReading]] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda _: running.slots.release())
        running.pending.append(_Request(texts, future))
        running.arrived.set()
        return future

    async def _serve(self, running: _Running) -> None:
        while not running.closed:
            batch = await self._collect(running)
            if batch:
                await self._predict(running, batch)

    async def _collect(self, running: _Running) -> list[_Request]:
        """The next batch: what is queued, plus what arrives within `max_wait` if it has company."""
        while not running.pending and not running.closed:
            running.arrived.clear()
            await running.arrived.wait()
        batch: list[_Request] = []
        self._take(running, batch)
        await asyncio.sleep(0)  # callers started in the same loop pass join this batch
        self._take(running, batch)
        if len(batch) > 1 and self._settings.max_wait > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.max_wait):
                    while self._take(running, batch):
                        running.arrived.clear()
                        await running.arrived.wait()
        return batch

    def _take(self, running: _Running, batch: list[_Request]) -> bool:
        """Move queued requests into `batch` while they fit; True while it has room."""
        room = self._settings.max_batch - sum(len(r.texts) for r in batch)
        while running.pending and not running.closed:
            request = running.pending[0]
            if request.future.done():  # its caller was cancelled
                running.pending.popleft()
            elif len(request.texts) <= room:
                batch.append(running.pending.popleft())
                room -= len(request.texts)
            else:
                return False
        return room > 0 and not running.closed

    async def _predict(self, running: _Running, batch: list[_Request]) -> None:
        live = [request for request in batch if not request.future.done()]
        texts = [text for request in live for text in request.texts]
        if not texts:
            return
        loop = asyncio.get_running_loop()
        try:
            readings = await loop.run_in_executor(running.executor, self._model.predict, texts)
        except asyncio.CancelledError:
            for request in live:
                _fail(request, "the emotion batcher closed while reading this")
            raise
        except Exception as exc:
            for request in live:
                _fail(request, f"the emotion model failed ({type(exc).__name__})", exc)
            return
        if len(readings) != len(texts):
            for request in live:
                _fail(request, f"the emotion model gave {len(readings)} readings for {len(texts)}")
            return
        offset = 0
        for request in live:
            end = offset + len(request.texts)
            if not request.future.done():
                request.future.set_result(readings[offset:end])
            offset = end


def _fail(request: _Request, message: str, cause: BaseException | None = None) -> None:
    if request.future.done():
        return
    error = StageError("emotion", message)
    error.__cause__ = cause
    request.future.set_exception(error)
