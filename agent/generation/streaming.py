"""One streaming wrapper for every LLM: deadlines, the before/after split, the log line.

An LLM backend (`StreamBackend`: the vLLM client, vLLM's engine in this process, a
local transformers model) only yields the raw text pieces of a reply and releases
what it holds when its generator is closed. `LlmGenerator` makes a `Generator` of it:

- `open` waits for the first non-empty piece, within `StreamDeadlines.first_token_s`
  and the total; the stream it returns then gives each next piece within
  `between_tokens_s` of asking for it, and all of them within `total_s` of the call.
  Each deadline is applied with `asyncio.timeout` around the awaits of one step,
  never across a `yield`, so no deadline fires into the consumer. The steps of one
  stream share one timer (`LazyTimeout`): a piece in time costs no timer of its own.
- Any failure before the first piece (a `BackendFailure`, another exception, a
  deadline, a reply without text) is `GeneratorUnavailable("<name>: <reason>")`:
  nothing reached the user, so another generator may answer. After it, it is
  `GeneratorBroke`: the user already has part of a reply.
- With a `CircuitBreaker`, a call is refused at once while the circuit is open, and
  each call is counted once it ends: as failed when the server was at fault (a
  `BackendFailure` with `server_fault`, any other error, a deadline, or a failure
  after the first piece), as healthy otherwise; a call cancelled before its first
  piece tells nothing.
- One log line per reply: `llm.stream_done` (info), or the warning `llm.unavailable`
  or `llm.stream_broke`, each with the generator's name and the session and turn ids.

Cancelling `open`, cancelling the consumer or closing the stream closes the
backend's generator, so it stops the upstream work at once (its HTTP response, its
engine request, its thread).
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Protocol

import structlog
from structlog.typing import FilteringBoundLogger

from agent.errors import GeneratorBroke, GeneratorUnavailable
from agent.generation.base import GenerationRequest, ReplyPieces, ReplyStream
from agent.generation.breaker import Admission, BreakerState, CircuitBreaker
from agent.lazy_deadline import LazyTimeout

__all__ = ["BackendFailure", "LlmGenerator", "StreamBackend", "StreamDeadlines"]

_log = structlog.get_logger(__name__)


class BackendFailure(Exception):
    """Why a backend's stream failed: `reason` names the cause, never the user's words.

    `server_fault` is False when the request itself was at fault (refused as bad), so the
    circuit breaker does not count it against the server.
    """

    def __init__(self, reason: str, *, server_fault: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.server_fault = server_fault


class StreamBackend(Protocol):
    """What an LLM does for `LlmGenerator`: a reply's raw text pieces, nothing more."""

    @property
    def name(self) -> str: ...

    def pieces(self, request: GenerationRequest) -> AsyncGenerator[str, None]:
        """The reply's text, in the pieces the model produces (empty ones are skipped).

        Raises at once, before any piece, only for misuse (not entered). The generator
        raises `BackendFailure` (or lets another exception out) when the reply fails,
        and releases what it holds upstream when closed or cancelled.
        """
        ...


@dataclass(frozen=True, slots=True)
class StreamDeadlines:
    """How long a reply may take (seconds): to its first piece, between pieces, in all."""

    first_token_s: float
    between_tokens_s: float
    total_s: float

    def __post_init__(self) -> None:
        for name in ("first_token_s", "between_tokens_s", "total_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive finite number, got {value}")


class _Outcome(enum.Enum):
    """What a call says about the server, for the circuit breaker."""

    UNKNOWN = "unknown"  # cancelled before it told anything
    HEALTHY = "healthy"  # it answered (a piece, or a refusal of a bad request)
    FAILED = "failed"  # it failed: unreachable, an error, timed out, broke


class _Failed(Exception):
    """One step of a stream failed; becomes GeneratorUnavailable or GeneratorBroke."""

    def __init__(self, reason: str, *, server_fault: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.server_fault = server_fault


class LlmGenerator:
    """A `Generator` of a `StreamBackend`, with its deadlines and, optionally, a breaker.

    `name` is the backend's, and so is every reply's `answered_by`.
    """

    def __init__(
        self,
        backend: StreamBackend,
        deadlines: StreamDeadlines,
        *,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._deadlines = deadlines
        self._breaker = breaker
        self._clock = clock

    @property
    def name(self) -> str:
        return self._backend.name

    @property
    def deadlines(self) -> StreamDeadlines:
        return self._deadlines

    @property
    def circuit(self) -> BreakerState | None:
        """The circuit breaker's state now; None without a breaker."""
        return None if self._breaker is None else self._breaker.state(self._clock())

    async def open(self, request: GenerationRequest) -> ReplyStream:
        """Start a reply; return once its first piece is in (see the module docstring).

        Safe to cancel: the backend's generator is closed before the cancellation
        propagates.
        """
        log = _log.bind(generator=self.name, session_id=request.session_id, turn_id=request.turn_id)
        admission: Admission | None = None
        if self._breaker is not None:
            admission = self._breaker.admit(self._clock())
            if admission is None:
                log.warning("llm.circuit_open")
                raise GeneratorUnavailable(f"{self.name}: circuit open")
        try:
            upstream = self._backend.pieces(request)
        except BaseException:
            self._settle(admission, _Outcome.UNKNOWN, log)
            raise
        run = self._run(upstream, admission, log)
        try:
            first = await anext(run)
        except BaseException:
            await run.aclose()
            raise
        return ReplyStream(answered_by=self.name, pieces=ReplyPieces(run, first=first))

    async def _run(
        self,
        upstream: AsyncGenerator[str, None],
        admission: Admission | None,
        log: FilteringBoundLogger,
    ) -> AsyncGenerator[str, None]:
        """The reply's pieces, the first included; every failure translated and logged."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self._deadlines.total_s
        outcome = _Outcome.UNKNOWN
        steps = LazyTimeout()
        try:
            async with aclosing(upstream):
                first_by = min(deadline, started + self._deadlines.first_token_s)
                try:
                    first = await self._next(upstream, steps, first_by, deadline, first=True)
                except _Failed as exc:
                    outcome = _Outcome.FAILED if exc.server_fault else _Outcome.HEALTHY
                    log.warning("llm.unavailable", reason=exc.reason)
                    raise GeneratorUnavailable(f"{self.name}: {exc.reason}") from exc.__cause__
                assert first is not None  # `_next` raises for a reply without a first piece
                outcome = _Outcome.HEALTHY
                first_token_ms = round((loop.time() - started) * 1000)
                count = 1
                yield first
                while True:
                    step = min(deadline, loop.time() + self._deadlines.between_tokens_s)
                    try:
                        piece = await self._next(upstream, steps, step, deadline, first=False)
                    except _Failed as exc:
                        outcome = _Outcome.FAILED
                        log.warning("llm.stream_broke", reason=exc.reason, pieces=count)
                        raise GeneratorBroke(
                            f"{self.name}: {exc.reason} after the first token"
                        ) from exc.__cause__
                    if piece is None:
                        break
                    count += 1
                    yield piece
            log.info(
                "llm.stream_done",
                first_token_ms=first_token_ms,
                duration_ms=round((loop.time() - started) * 1000),
                pieces=count,
            )
        finally:
            steps.close()
            self._settle(admission, outcome, log)

    @staticmethod
    async def _next(
        upstream: AsyncGenerator[str, None],
        steps: LazyTimeout,
        step: float,
        deadline: float,
        *,
        first: bool,
    ) -> str | None:
        """The next non-empty piece by `step`; None at the end (after the first piece)."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(None) as timer:
                steps.watch(timer, step)
                try:
                    while (piece := await anext(upstream, None)) is not None:
                        if piece:
                            return piece
                finally:
                    steps.unwatch()
        except TimeoutError as exc:
            if not timer.expired():
                raise _Failed(f"failed: {type(exc).__name__}") from exc
            if loop.time() >= deadline:
                raise _Failed("total timeout") from exc
            raise _Failed("no first token in time" if first else "no token in time") from exc
        except BackendFailure as exc:
            raise _Failed(exc.reason, server_fault=exc.server_fault) from exc
        except Exception as exc:
            raise _Failed(f"failed: {type(exc).__name__}") from exc
        if first:
            raise _Failed("the reply was empty", server_fault=False)
        return None

    def _settle(
        self, admission: Admission | None, outcome: _Outcome, log: FilteringBoundLogger
    ) -> None:
        breaker = self._breaker
        if breaker is None or admission is None:
            return
        now = self._clock()
        before = breaker.state(now)
        if outcome is _Outcome.HEALTHY:
            breaker.record_success(admission)
        elif outcome is _Outcome.FAILED:
            breaker.record_failure(admission, now)
        else:
            breaker.release(admission)
        after = breaker.state(now)
        if after is not before:
            log.warning("llm.circuit_changed", state=after.value, was=before.value)
