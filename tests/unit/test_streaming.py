"""The LLM stream wrapper: deadlines, the before/after split, closing, the breaker.

The backends are small in-test generators; the deadlines are tens of milliseconds
against backends that wait forever, so nothing asserts on how long anything took.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing

import pytest
from structlog.testing import capture_logs

from agent.errors import GeneratorBroke, GeneratorUnavailable
from agent.generation.base import GenerationRequest, ReplyStream
from agent.generation.breaker import BreakerState, CircuitBreaker
from agent.generation.guard import OutputGuard
from agent.generation.guarded import GuardedGenerator
from agent.generation.streaming import BackendFailure, LlmGenerator, StreamDeadlines
from tests.support.generation import plain_request
from tests.support.waiting import eventually

HANG = 10.0  # only keeps a broken test from hanging
SHORT = 0.05


class Forever:
    """Marks where a script waits until it is closed or cancelled."""


FOREVER = Forever()


class Backend:
    """Yields its script: text pieces, `FOREVER` (waits), or an exception to raise."""

    name = "llm"

    def __init__(self, *script: str | Forever | Exception, entered: bool = True) -> None:
        self._script = script
        self._entered = entered
        self.calls = 0
        self.started = False
        self.closed = False

    def pieces(self, request: GenerationRequest) -> AsyncGenerator[str, None]:
        if not self._entered:
            raise RuntimeError("enter the backend first")
        self.calls += 1
        return self._generate()

    async def _generate(self) -> AsyncGenerator[str, None]:
        self.started = True
        try:
            for step in self._script:
                if isinstance(step, Forever):
                    await asyncio.Event().wait()
                elif isinstance(step, Exception):
                    raise step
                else:
                    yield step
        finally:
            self.closed = True


def generator(
    backend: Backend,
    *,
    first_token_s: float = HANG,
    between_tokens_s: float = HANG,
    total_s: float = HANG,
    breaker: CircuitBreaker | None = None,
) -> LlmGenerator:
    deadlines = StreamDeadlines(first_token_s, between_tokens_s, total_s)
    return LlmGenerator(backend, deadlines, breaker=breaker)


async def read(stream: ReplyStream) -> list[str]:
    async with asyncio.timeout(HANG), aclosing(stream):
        return [piece async for piece in stream]


async def read_until_error(stream: ReplyStream) -> tuple[list[str], BaseException]:
    got: list[str] = []
    try:
        async with asyncio.timeout(HANG), aclosing(stream):
            async for piece in stream:
                got.append(piece)
    except Exception as exc:
        return got, exc
    raise AssertionError(f"the stream ended without an error after {got}")


# -- a reply that works ---------------------------------------------------------


async def test_open_returns_once_the_first_text_is_in_and_names_the_backend() -> None:
    backend = Backend("", "", "Hel", "", "lo")
    llm = generator(backend)
    with capture_logs() as logs:
        stream = await llm.open(plain_request())
        assert stream.answered_by == "llm"
        assert await read(stream) == ["Hel", "lo"]  # empty pieces are skipped
    assert backend.closed
    (done,) = [log for log in logs if log["event"] == "llm.stream_done"]
    assert done["generator"] == "llm"
    assert (done["session_id"], done["turn_id"], done["pieces"]) == ("s1", "t1", 2)
    assert done["first_token_ms"] >= 0
    assert done["duration_ms"] >= done["first_token_ms"]
    assert llm.name == "llm"


async def test_misuse_of_the_backend_is_not_hidden() -> None:
    with pytest.raises(RuntimeError, match="enter the backend first"):
        await generator(Backend("a", entered=False)).open(plain_request())


# -- before the first piece: GeneratorUnavailable ---------------------------------


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ((BackendFailure("HTTP 503"),), "llm: HTTP 503"),
        (("", ValueError("boom")), r"llm: failed: ValueError"),
        (("", ""), "llm: the reply was empty"),
        ((FOREVER,), "llm: no first token in time"),
    ],
    ids=["backend failure", "other error", "empty", "no first token"],
)
async def test_a_failure_before_the_first_piece_is_unavailable(
    script: tuple[str | Forever | Exception, ...], reason: str
) -> None:
    backend = Backend(*script)
    with capture_logs() as logs, pytest.raises(GeneratorUnavailable, match=reason) as info:
        async with asyncio.timeout(HANG):
            await generator(backend, first_token_s=SHORT).open(plain_request())
    assert backend.closed
    assert "boom" not in str(info.value)
    (warning,) = [log for log in logs if log["event"] == "llm.unavailable"]
    assert warning["reason"] in str(info.value)


async def test_the_total_deadline_bounds_the_first_piece_too() -> None:
    backend = Backend(FOREVER)
    with pytest.raises(GeneratorUnavailable, match="llm: total timeout"):
        async with asyncio.timeout(HANG):
            await generator(backend, total_s=SHORT).open(plain_request())
    assert backend.closed


async def test_cancelling_open_closes_the_backend() -> None:
    backend = Backend(FOREVER)
    opening = asyncio.create_task(generator(backend).open(plain_request()))
    await eventually(lambda: backend.started, within=HANG)
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    assert backend.closed


# -- after the first piece: GeneratorBroke ------------------------------------------


@pytest.mark.parametrize(
    ("script", "settings", "reason"),
    [
        (("a", "b", BackendFailure("stream cut")), {}, "stream cut"),
        (("a", "b", KeyError("x")), {}, "failed: KeyError"),
        (("a", "b", FOREVER), {"between_tokens_s": SHORT}, "no token in time"),
        (("a", "b", FOREVER), {"total_s": 1.0, "between_tokens_s": 5.0}, "total timeout"),
    ],
    ids=["backend failure", "other error", "silence", "total"],
)
async def test_a_failure_after_the_first_piece_breaks(
    script: tuple[str | Forever | Exception, ...], settings: dict[str, float], reason: str
) -> None:
    backend = Backend(*script)
    with capture_logs() as logs:
        stream = await generator(backend, **settings).open(plain_request())
        got, error = await read_until_error(stream)
    assert got == ["a", "b"]
    assert isinstance(error, GeneratorBroke)
    assert str(error) == f"llm: {reason} after the first token"
    assert backend.closed
    (warning,) = [log for log in logs if log["event"] == "llm.stream_broke"]
    assert (warning["reason"], warning["pieces"]) == (reason, 2)


# -- closing and cancelling release the backend --------------------------------------


async def test_closing_the_stream_before_reading_it_closes_the_backend() -> None:
    backend = Backend("a", FOREVER)
    stream = await generator(backend).open(plain_request())
    assert backend.started
    assert not backend.closed
    await stream.aclose()
    assert backend.closed


async def test_closing_the_stream_midway_closes_the_backend() -> None:
    backend = Backend("a", "b", FOREVER)
    stream = await generator(backend).open(plain_request())
    assert [await anext(stream.pieces) for _ in range(2)] == ["a", "b"]
    await stream.aclose()
    assert backend.closed


async def test_cancelling_the_consumer_closes_the_backend() -> None:
    backend = Backend("a", FOREVER)
    got: list[str] = []

    async def consume() -> None:
        async with aclosing(await generator(backend).open(plain_request())) as stream:
            async for piece in stream:
                got.append(piece)

    task = asyncio.create_task(consume())
    await eventually(lambda: got == ["a"], within=HANG)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert backend.closed


# -- the circuit breaker -----------------------------------------------------------


async def test_failures_open_the_circuit_and_an_open_circuit_calls_nothing() -> None:
    breaker = CircuitBreaker(failures_to_open=2, reset_after=HANG)
    backend = Backend(BackendFailure("HTTP 500"))
    llm = generator(backend, breaker=breaker)
    for _ in range(2):
        with pytest.raises(GeneratorUnavailable, match="HTTP 500"):
            await llm.open(plain_request())
    assert llm.circuit is BreakerState.OPEN
    with pytest.raises(GeneratorUnavailable, match="llm: circuit open"):
        await llm.open(plain_request())
    assert backend.calls == 2


@pytest.mark.parametrize(
    "script",
    [
        (BackendFailure("HTTP 400", server_fault=False),),
        ("",),  # an empty reply is an answer
    ],
    ids=["bad request", "empty"],
)
async def test_the_requests_own_faults_do_not_count(
    script: tuple[str | Forever | Exception, ...],
) -> None:
    breaker = CircuitBreaker(failures_to_open=1, reset_after=HANG)
    llm = generator(Backend(*script), breaker=breaker)
    with pytest.raises(GeneratorUnavailable):
        await llm.open(plain_request())
    assert llm.circuit is BreakerState.CLOSED


async def test_a_break_after_the_first_piece_counts() -> None:
    breaker = CircuitBreaker(failures_to_open=1, reset_after=HANG)
    llm = generator(Backend("a", FOREVER), between_tokens_s=SHORT, breaker=breaker)
    _, error = await read_until_error(await llm.open(plain_request()))
    assert isinstance(error, GeneratorBroke)
    assert llm.circuit is BreakerState.OPEN


async def test_a_reply_closed_midway_is_healthy() -> None:
    breaker = CircuitBreaker(failures_to_open=1, reset_after=HANG)
    llm = generator(Backend("a", FOREVER), breaker=breaker)
    stream = await llm.open(plain_request())
    await stream.aclose()
    assert llm.circuit is BreakerState.CLOSED


async def test_a_half_open_trial_cancelled_before_its_first_piece_frees_the_slot() -> None:
    breaker = CircuitBreaker(failures_to_open=1, reset_after=SHORT)
    backend = Backend(BackendFailure("HTTP 500"))
    llm = generator(backend, breaker=breaker)
    with pytest.raises(GeneratorUnavailable):
        await llm.open(plain_request())
    await eventually(lambda: llm.circuit is BreakerState.HALF_OPEN, within=HANG)
    slow = Backend(FOREVER)
    trial = LlmGenerator(slow, StreamDeadlines(HANG, HANG, HANG), breaker=breaker)
    opening = asyncio.create_task(trial.open(plain_request()))
    await eventually(lambda: slow.started, within=HANG)
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    assert trial.circuit is BreakerState.HALF_OPEN  # the next call may be the trial
    assert await read(await generator(Backend("ok"), breaker=breaker).open(plain_request()))
    assert trial.circuit is BreakerState.CLOSED


# -- through the output guard ---------------------------------------------------------


async def test_the_guard_keeps_the_answerer_and_closes_the_backend() -> None:
    backend = Backend("Write to bob@exam", "ple.com now. ", "Bye.")
    guarded = GuardedGenerator(generator(backend), OutputGuard())
    stream = await guarded.open(plain_request())
    assert stream.answered_by == "llm"
    assert "".join(await read(stream)) == "Write to [EMAIL] now. Bye."
    assert backend.closed
    assert guarded.name == "llm"


async def test_closing_a_guarded_stream_before_reading_it_closes_the_backend() -> None:
    backend = Backend("Hello there. ", FOREVER)
    stream = await GuardedGenerator(generator(backend), OutputGuard()).open(plain_request())
    await stream.aclose()
    assert backend.closed


def test_deadlines_must_be_positive_and_finite() -> None:
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="first_token_s"):
            StreamDeadlines(bad, 1.0, 1.0)
