"""The circuit breaker's core, with time passed in: no clock, no event loop."""

from __future__ import annotations

from agent.generation.breaker import Admission, BreakerState, CircuitBreaker


def test_breaker_counts_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(failures_to_open=3, reset_after=10.0)
    for _ in range(2):
        breaker.record_failure(Admission.NORMAL, now=0.0)
    breaker.record_success(Admission.NORMAL)
    for _ in range(2):
        breaker.record_failure(Admission.NORMAL, now=0.0)
    assert breaker.state(0.0) is BreakerState.CLOSED
    breaker.record_failure(Admission.NORMAL, now=1.0)
    assert breaker.state(1.0) is BreakerState.OPEN
    assert breaker.admit(10.9) is None
    assert breaker.state(11.0) is BreakerState.HALF_OPEN


def test_breaker_trial_slot_is_freed_by_a_cancelled_trial() -> None:
    breaker = CircuitBreaker(failures_to_open=1, reset_after=1.0)
    breaker.record_failure(Admission.NORMAL, now=0.0)
    trial = breaker.admit(1.0)
    assert trial is Admission.TRIAL
    assert breaker.admit(1.0) is None  # one trial at a time
    breaker.release(trial)
    assert breaker.admit(1.0) is Admission.TRIAL


def test_breaker_ignores_stale_calls_once_open() -> None:
    breaker = CircuitBreaker(failures_to_open=1, reset_after=1.0)
    early = breaker.admit(0.0)
    assert early is Admission.NORMAL
    breaker.record_failure(Admission.NORMAL, now=0.0)
    breaker.record_success(early)  # let through before it opened: says nothing now
    assert breaker.state(0.5) is BreakerState.OPEN
