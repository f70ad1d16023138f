"""The token bucket and the connection limits, with time passed in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.gateway.limits import ConnectionLimits, TokenBucket


def test_bucket_starts_full_and_allows_a_burst() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=20, now=0.0)
    assert all(bucket.allow(0.0) for _ in range(20))
    assert not bucket.allow(0.0)


def test_bucket_refills_at_the_rate() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=20, now=0.0)
    for _ in range(20):
        bucket.allow(0.0)
    assert not bucket.allow(0.05)  # half a token
    assert bucket.allow(0.1)  # one token
    assert not bucket.allow(0.1)
    assert [bucket.allow(0.4) for _ in range(4)] == [True, True, True, False]


def test_bucket_never_holds_more_than_the_burst() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=5, now=0.0)
    assert sum(bucket.allow(1000.0) for _ in range(10)) == 5


def test_clock_going_backwards_refills_nothing() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=1, now=100.0)
    assert bucket.allow(100.0)
    assert not bucket.allow(50.0)
    assert not bucket.allow(100.05)
    assert bucket.allow(100.1)


@given(st.lists(st.floats(min_value=0, max_value=10, allow_nan=False), min_size=1, max_size=200))
def test_allowed_frames_never_exceed_burst_plus_rate_times_elapsed(gaps: list[float]) -> None:
    rate, burst = 10.0, 20
    bucket = TokenBucket(rate_per_s=rate, burst=burst, now=0.0)
    now = 0.0
    allowed = 0
    for gap in gaps:
        now += gap
        allowed += bucket.allow(now)
        assert allowed <= burst + rate * now + 1e-9
        assert 0 <= bucket.tokens <= burst


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_bucket_rejects_nonsense(rate: float, burst: int) -> None:
    with pytest.raises(ConfigError):
        TokenBucket(rate_per_s=rate, burst=burst, now=0.0)


def test_limits_defaults() -> None:
    limits = ConnectionLimits()
    assert limits.soft_frame_bytes == 64 * 1024
    assert limits.max_frame_bytes == 1024 * 1024
    assert (limits.rate_per_s, limits.burst) == (10.0, 20)
    assert limits.idle_timeout_s == 300.0
    assert limits.hello_timeout_s == 10.0


def test_limits_are_validated() -> None:
    with pytest.raises(ConfigError, match="idle_timeout_s"):
        ConnectionLimits(idle_timeout_s=0)
    with pytest.raises(ConfigError, match="max_frame_bytes"):
        ConnectionLimits(soft_frame_bytes=2048, max_frame_bytes=1024)
