"""Admission control's core: which turns fit, and how long a refused one should wait."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from agent.errors import ConfigError
from agent.gateway.admission import MAX_RETRY_MS, MIN_RETRY_MS, Admission, AdmissionLimits


def test_turns_fit_up_to_the_limit_and_each_ending_frees_a_place() -> None:
    admission = Admission(AdmissionLimits(max_in_flight=2, max_wait_s=60))
    assert admission.admit(("s1", "a"), now=0.0) is None
    assert admission.admit(("s2", "a"), now=0.0) is None  # turn ids are per session
    assert admission.admit(("s3", "a"), now=0.0) is not None
    assert admission.in_flight == 2
    admission.finished(("s1", "a"), now=1.0)
    assert admission.admit(("s3", "a"), now=1.0) is None


def test_a_refusal_counts_nothing_in() -> None:
    admission = Admission(AdmissionLimits(max_in_flight=1, max_wait_s=60))
    admission.admit(("s1", "a"), now=0.0)
    for n in range(5):
        assert admission.admit(("s2", str(n)), now=0.0) is not None
    assert admission.in_flight == 1
    assert admission.refusal(now=0.0) is not None


def test_when_every_turn_started_lately_waited_too_long_new_turns_are_refused() -> None:
    admission = Admission(AdmissionLimits(max_in_flight=100, max_wait_s=5, window_s=10))
    for n, at in enumerate((0.0, 1.0, 5.9)):
        assert admission.admit(("s", str(n)), now=at) is None
    admission.started(("s", "0"), now=6.0)  # waited 6 s
    admission.started(("s", "1"), now=6.5)  # 5.5 s
    assert admission.admit(("late", "a"), now=7.0) is not None  # whatever the count
    admission.started(("s", "2"), now=7.0)  # 1.1 s: the workers keep up again
    assert admission.admit(("late", "a"), now=7.0) is None
    admission.started(("late", "a"), now=20.0)  # 13 s; the quick start left the window
    assert admission.admit(("later", "a"), now=20.0) is not None


def test_one_turn_stuck_on_a_dead_worker_turns_no_one_away() -> None:
    admission = Admission(AdmissionLimits(max_in_flight=100, max_wait_s=5, window_s=10))
    admission.admit(("stuck", "a"), now=0.0)  # never started: its worker died
    for n in range(30):
        assert admission.admit(("s", str(n)), now=float(n)) is None
        admission.started(("s", str(n)), now=n + 0.1)
    assert admission.admit(("s", "next"), now=30.0) is None


def test_cancelled_turns_leave_at_once_without_counting_as_work_done() -> None:
    admission = Admission(AdmissionLimits(max_in_flight=1, max_wait_s=60))
    admission.admit(("s1", "a"), now=0.0)
    admission.released(("s1", "a"))
    assert admission.in_flight == 0
    admission.finished(("s1", "a"), now=1.0)  # its late end changes nothing
    admission.admit(("s1", "b"), now=1.0)
    # Nothing finished in the window: as long as a turn may wait.
    assert admission.admit(("s2", "a"), now=2.0) == MAX_RETRY_MS  # 60 s, capped


def test_the_wait_is_the_queue_at_the_rate_turns_finished_lately() -> None:
    admission = Admission(AdmissionLimits(max_in_flight=3, max_wait_s=60, window_s=10))
    for n in range(20):  # 20 turns finished in the last 10 s: 2 per second
        admission.admit(("done", str(n)), now=float(n) / 4)
        admission.finished(("done", str(n)), now=float(n) / 4)
    for n in range(3):
        admission.admit(("s", str(n)), now=9.0)
    # Three waiting and the refused one itself: 4 turns at 2 per second.
    assert admission.admit(("late", "a"), now=9.0) == 2000
    # Started turns are on their way: only the waiting ones queue ahead.
    admission.started(("s", "0"), now=9.0)
    admission.started(("s", "1"), now=9.0)
    assert admission.admit(("late", "a"), now=9.0) == 1000
    # Old endings fall out of the window: as long as a turn may wait, at most 30 s.
    assert admission.admit(("late", "a"), now=30.0) == MAX_RETRY_MS


def test_with_no_turn_finished_lately_the_wait_is_the_longest_a_turn_may_wait() -> None:
    admission = Admission(AdmissionLimits(max_in_flight=1, max_wait_s=5))
    admission.admit(("s1", "a"), now=0.0)
    assert admission.admit(("s2", "a"), now=1.0) == 5000


def test_the_wait_is_bounded_below() -> None:
    admission = Admission(AdmissionLimits(max_in_flight=1, max_wait_s=60, window_s=1))
    for n in range(1000):
        admission.admit(("done", str(n)), now=0.5)
        admission.finished(("done", str(n)), now=0.5)
    admission.admit(("s", "a"), now=0.5)
    assert admission.admit(("s", "b"), now=0.5) == MIN_RETRY_MS


def test_a_process_never_overloaded_keeps_nothing_per_turn_it_answered() -> None:
    """Ends are kept for the rate over the window, not for every turn ever answered."""
    admission = Admission(AdmissionLimits(max_in_flight=10, max_wait_s=5, window_s=10))

    def answer(turns: range) -> None:
        for n in turns:  # 100 turns a second, never refused
            key, at = ("s", str(n)), n / 100
            assert admission.admit(key, now=at) is None
            admission.started(key, now=at)
            admission.finished(key, now=at)

    answer(range(10_000))  # a full window, and the containers at their working size
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        answer(range(10_000, 110_000))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        if not tracing:
            tracemalloc.stop()
    assert grown < 64 * 1024  # one float kept per turn would be over 3 MB
    # The window's ends still set the wait: 1000 turns in 10 s, 100 a second.
    for n in range(10):
        admission.admit(("busy", str(n)), now=1100.0)
    assert admission.admit(("late", "a"), now=1100.0) == 110


@pytest.mark.parametrize("limits", [{"max_in_flight": 0}, {"max_wait_s": 0.0}, {"window_s": -1.0}])
def test_limits_must_be_positive(limits: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="admission limits must be positive"):
        AdmissionLimits(**limits)  # type: ignore[arg-type]
