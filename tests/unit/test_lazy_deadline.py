"""LazyDeadline: one timer however often the deadline moves, `on_due` once it is due;
LazyTimeout: the watched block ends with TimeoutError at its deadline, no other."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from agent.lazy_deadline import LazyDeadline, LazyTimeout


def _recorder() -> tuple[list[float], asyncio.Event, Callable[[], None]]:
    loop = asyncio.get_running_loop()
    calls: list[float] = []
    called = asyncio.Event()

    def on_due() -> None:
        calls.append(loop.time())
        called.set()

    return calls, called, on_due


async def test_calls_on_due_once_when_due() -> None:
    calls, called, on_due = _recorder()
    deadline = LazyDeadline(on_due)
    deadline.set(asyncio.get_running_loop().time() + 0.01)
    await asyncio.wait_for(called.wait(), 5)
    await asyncio.sleep(0.05)
    assert len(calls) == 1
    assert deadline.when is None


@pytest.mark.parametrize(("first_s", "then_s"), [(0.02, 0.2), (60.0, 0.05)])
async def test_a_moved_deadline_falls_due_at_the_new_time(first_s: float, then_s: float) -> None:
    calls, called, on_due = _recorder()
    deadline = LazyDeadline(on_due)
    now = asyncio.get_running_loop().time()
    deadline.set(now + first_s)
    deadline.set(now + then_s)
    await asyncio.wait_for(called.wait(), 5)
    await asyncio.sleep(0.05)
    assert len(calls) == 1
    assert calls[0] >= now + then_s - 0.01  # and, moved earlier, long before `first_s`


@pytest.mark.parametrize("stop", ["clear", "close"])
async def test_a_cleared_or_closed_deadline_calls_nothing(stop: str) -> None:
    calls, _, on_due = _recorder()
    deadline = LazyDeadline(on_due)
    deadline.set(asyncio.get_running_loop().time() + 0.01)
    if stop == "clear":
        deadline.set(None)
    else:
        deadline.close()
    await asyncio.sleep(0.05)
    assert calls == []


async def test_moving_the_deadline_later_makes_no_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    call_at = loop.call_at

    def counting_call_at(when: float, callback: Callable[..., Any], *args: Any) -> Any:
        armed.append(when)
        return call_at(when, callback, *args)

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    calls, _, on_due = _recorder()
    deadline = LazyDeadline(on_due)
    now = loop.time()
    for step in range(1000):
        deadline.set(now + 60 + step)
        deadline.set(None)
    deadline.close()
    assert armed == [now + 60]
    assert calls == []


async def _sleep_watched(
    steps: LazyTimeout, after_s: float, *, moved_to_s: float | None = None
) -> None:
    """Sleep a minute in a block that `steps` ends `after_s` from now (or `moved_to_s`)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(None) as block:
        steps.watch(block, loop.time() + after_s)
        if moved_to_s is not None:
            steps.move(loop.time() + moved_to_s)
        try:
            await asyncio.sleep(60)
        finally:
            steps.unwatch()


async def test_a_watched_block_ends_with_timeout_error_once_due() -> None:
    steps = LazyTimeout()
    with pytest.raises(TimeoutError):
        await _sleep_watched(steps, 0.01)
    steps.close()


async def test_steps_in_time_end_no_block_and_a_late_one_ends_its_own() -> None:
    steps = LazyTimeout()
    loop = asyncio.get_running_loop()
    for _ in range(3):
        async with asyncio.timeout(None) as block:
            steps.watch(block, loop.time() + 0.05)
            await asyncio.sleep(0)
        steps.unwatch()
        assert not block.expired()
    await asyncio.sleep(0.1)  # the first step's deadline passes with no block watched
    with pytest.raises(TimeoutError):
        await _sleep_watched(steps, 0.01)
    steps.close()


async def test_moving_a_watched_deadline_earlier_ends_the_block_sooner() -> None:
    steps = LazyTimeout()
    with pytest.raises(TimeoutError):
        await _sleep_watched(steps, 60, moved_to_s=0.01)
    steps.close()
