"""The retry policy of webhook deliveries: backoff and the verdict after each attempt."""

from __future__ import annotations

import pytest

from agent.handoff.retry import Backoff, Failure, Verdict, decide

EXACT = Backoff(spread=0.0)


def test_backoff_doubles_from_one_second_up_to_five_minutes() -> None:
    delays = [EXACT.delay(n) for n in range(1, 12)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert EXACT.delay(10_000) == 300
    assert Backoff(factor=1e10, spread=0.0).delay(100) == 300
    assert Backoff(factor=1.0, spread=0.0).delay(100) == 1


def test_jitter_comes_from_the_draw_and_only_shortens() -> None:
    backoff = Backoff(base=10.0, cap=100.0, spread=0.2)
    assert backoff.delay(1, draw=0.0) == 10.0
    assert backoff.delay(1, draw=0.5) == pytest.approx(9.0)
    assert backoff.delay(4, draw=0.999) == pytest.approx(80.0 * (1 - 0.2 * 0.999))
    with pytest.raises(ValueError, match="draw"):
        backoff.delay(1, draw=1.0)
    with pytest.raises(ValueError, match="from 1"):
        backoff.delay(0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base": 0.0},
        {"base": 10.0, "cap": 5.0},
        {"cap": float("inf")},
        {"factor": 0.5},
        {"spread": 1.5},
    ],
)
def test_bad_backoffs_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_any_2xx_is_delivered(status: int) -> None:
    step = decide(status, attempt=8, attempts=8, backoff=EXACT)
    assert step.verdict is Verdict.DELIVERED
    assert step.error is None


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (500, "HTTP 500 Internal Server Error"),
        (502, "HTTP 502 Bad Gateway"),
        (503, "HTTP 503 Service Unavailable"),
        (599, "HTTP 599"),
        (408, "HTTP 408 Request Timeout"),
        (429, "HTTP 429 Too Many Requests"),
        (Failure.TIMEOUT, "timed out"),
        (Failure.CONNECTION, "connection failed"),
    ],
)
def test_transient_failures_are_retried_after_the_backoff(
    result: int | Failure, reason: str
) -> None:
    step = decide(result, attempt=3, attempts=8, backoff=EXACT)
    assert step.verdict is Verdict.RETRY
    assert step.delay == 4.0
    assert step.error == reason


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422, 301, 302, 100])
def test_a_refusal_fails_at_once_and_says_so(status: int) -> None:
    step = decide(status, attempt=1, attempts=8, backoff=EXACT)
    assert step.verdict is Verdict.FAILED
    assert step.error is not None
    assert step.error.startswith(f"HTTP {status}")
    assert step.error.endswith("(refused; not retried)")


def test_the_last_attempt_gives_up_with_the_reason_and_the_count() -> None:
    step = decide(
        Failure.CONNECTION, attempt=8, attempts=8, backoff=EXACT, detail="ConnectError: refused"
    )
    assert step.verdict is Verdict.FAILED
    assert step.error == "connection failed: ConnectError: refused (gave up after 8 attempts)"
    assert decide(503, attempt=7, attempts=8, backoff=EXACT).verdict is Verdict.RETRY
    assert decide(503, attempt=1, attempts=1, backoff=EXACT).verdict is Verdict.FAILED


def test_the_draw_reaches_the_delay() -> None:
    backoff = Backoff(base=1.0, spread=0.5)
    step = decide(500, attempt=2, attempts=8, backoff=backoff, draw=0.5)
    assert step.delay == pytest.approx(2.0 * 0.75)
