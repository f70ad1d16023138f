"""The bus adapter: handoff requests from the in-process bus reach a submitter."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent import topics
from agent.bus.inprocess import InProcessBus
from agent.errors import StoreError
from agent.events import HandoffRequested, SessionClosed
from agent.handoff import Backoff, HandoffForwarder

FAST = Backoff(base=0.001, cap=0.001, spread=0.0)


class Recorder:
    """A `HandoffSubmitter` that keeps what it gets, failing the first `failures` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0
        self.submitted: list[HandoffRequested] = []

    async def submit(self, request: HandoffRequested) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreError("recording a handoff delivery failed: the database is away")
        self.submitted.append(request)
        return f"d-{len(self.submitted)}"


def handoff(session_id: str) -> HandoffRequested:
    return HandoffRequested(
        session_id=session_id,
        user_id="u-1",
        tenant="default",
        trigger="crisis",
        reason="crisis signal",
        at=time.time(),
    )


async def test_every_request_is_submitted_once_across_a_group() -> None:
    one, two = Recorder(), Recorder()
    async with (
        InProcessBus() as bus,
        HandoffForwarder(bus, one, group="workers"),
        HandoffForwarder(bus, two, group="workers"),
    ):
        for n in range(6):
            await bus.publish(topics.handoff(f"s-{n}"), handoff(f"s-{n}"))
    sessions = sorted(r.session_id for r in [*one.submitted, *two.submitted])
    assert sessions == [f"s-{n}" for n in range(6)]
    assert one.submitted
    assert two.submitted


async def test_leaving_submits_what_was_received_first() -> None:
    recorder = Recorder()
    async with InProcessBus() as bus, HandoffForwarder(bus, recorder, group=None):
        for n in range(3):
            await bus.publish(topics.handoff(f"s-{n}"), handoff(f"s-{n}"))
    assert [r.session_id for r in recorder.submitted] == ["s-0", "s-1", "s-2"]


async def test_a_failed_submit_is_tried_again() -> None:
    recorder = Recorder(failures=2)
    forwarding = {"group": None, "submit_attempts": 3, "backoff": FAST}
    async with InProcessBus() as bus, HandoffForwarder(bus, recorder, **forwarding):
        await bus.publish(topics.handoff("s-1"), handoff("s-1"))
    assert recorder.calls == 3
    assert [r.session_id for r in recorder.submitted] == ["s-1"]


async def test_a_request_that_cannot_be_submitted_does_not_stop_the_next() -> None:
    recorder = Recorder(failures=2)
    forwarding = {"group": None, "submit_attempts": 2, "backoff": FAST}
    async with InProcessBus() as bus, HandoffForwarder(bus, recorder, **forwarding):
        await bus.publish(topics.handoff("s-lost"), handoff("s-lost"))
        await bus.publish(topics.handoff("s-next"), handoff("s-next"))
    assert recorder.calls == 3
    assert [r.session_id for r in recorder.submitted] == ["s-next"]


async def test_other_events_on_the_topic_are_skipped() -> None:
    recorder = Recorder()
    async with InProcessBus() as bus, HandoffForwarder(bus, recorder, group=None):
        await bus.publish(topics.handoff("s-1"), SessionClosed(session_id="s-1", at=1.0))
        await bus.publish(topics.handoff("s-1"), handoff("s-1"))
        await bus.publish(topics.turn("s-1"), SessionClosed(session_id="s-1", at=2.0))
    assert [r.session_id for r in recorder.submitted] == ["s-1"]


async def test_leaving_on_an_error_cancels_a_stuck_submit() -> None:
    class Stuck:
        async def submit(self, request: HandoffRequested) -> str:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    async def fail_while_submitting() -> None:
        async with (
            InProcessBus() as bus,
            HandoffForwarder(bus, Stuck(), group=None, drain_timeout=60.0),
        ):
            await bus.publish(topics.handoff("s-1"), handoff("s-1"))
            await asyncio.sleep(0)
            raise LookupError("the worker stops")

    with pytest.raises(LookupError):  # the caller's own error, not a group of it
        await fail_while_submitting()
