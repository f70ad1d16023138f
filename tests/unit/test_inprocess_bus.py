import asyncio

import pytest

from agent.bus import InProcessBus
from agent.bus.base import topic_matches
from agent.errors import BusClosedError, BusOverflowError
from agent.events import Cancel


def _cancel(turn: str) -> Cancel:
    return Cancel(session_id="s", turn_id=turn, reason="client")


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("hl/v1/turn/+", "hl/v1/turn/abc", True),
        ("hl/v1/turn/+", "hl/v1/turn/abc/x", False),
        ("hl/v1/#", "hl/v1/turn/abc", True),
        ("hl/v1/turn/abc", "hl/v1/turn/abc", True),
        ("hl/v1/turn/abc", "hl/v1/turn/abd", False),
        ("hl/v1/+/abc", "hl/v1/reply/abc", True),
    ],
)
def test_topic_matching(pattern: str, topic: str, expected: bool) -> None:
    assert topic_matches(pattern, topic) is expected


async def test_exact_and_wildcard_subscribers_both_receive() -> None:
    async with (
        InProcessBus() as bus,
        bus.subscribe("a/b") as exact,
        bus.subscribe("a/+") as wildcard,
    ):
        await bus.publish("a/b", _cancel("t1"))
        assert (await exact.get()).event == _cancel("t1")
        delivery = await wildcard.get()
        assert delivery.topic == "a/b"


async def test_a_group_shares_events_exactly_once() -> None:
    async with (
        InProcessBus() as bus,
        bus.subscribe("t/+", group="g") as first,
        bus.subscribe("t/+", group="g") as second,
        bus.subscribe("t/+") as observer,
    ):
        for n in range(10):
            await bus.publish(f"t/{n}", _cancel(f"t{n}"))
        got = [first.queued, second.queued]
        assert sum(got) == 10
        assert min(got) > 0
        assert observer.queued == 10


async def test_overflow_cuts_the_slow_subscriber_off_only() -> None:
    async with (
        InProcessBus() as bus,
        bus.subscribe("x", max_queued=3) as slow,
        bus.subscribe("x") as fast,
    ):
        for n in range(5):
            await bus.publish("x", _cancel(f"t{n}"))
        with pytest.raises(BusOverflowError):
            await slow.get()
        assert (await fast.get()).event == _cancel("t0")


async def test_leaving_the_bus_ends_iteration_and_refuses_publish() -> None:
    bus = InProcessBus()
    async with bus, bus.subscribe("x") as sub:
        reader = asyncio.create_task(anext(aiter(sub), None))
        await asyncio.sleep(0)
    assert await reader is None
    with pytest.raises(BusClosedError):
        await bus.publish("x", _cancel("t"))


async def test_a_cut_off_group_member_no_longer_takes_its_share() -> None:
    async with (
        InProcessBus() as bus,
        bus.subscribe("t", group="g", max_queued=1) as stalled,
        bus.subscribe("t", group="g") as healthy,
    ):
        for n in range(6):
            await bus.publish("t", _cancel(f"t{n}"))
        with pytest.raises(BusOverflowError):
            await stalled.get()
        received = [(await healthy.get()).event.turn_id for _ in range(healthy.queued)]
    # The stalled member held one and overflowed on the next; the rest all went to the other.
    assert len(received) == 4


async def test_a_cancelled_read_loses_nothing() -> None:
    async with InProcessBus() as bus, bus.subscribe("x") as sub:
        waiting = asyncio.create_task(sub.get())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await bus.publish("x", _cancel("t1"))
        assert (await sub.get()).event == _cancel("t1")


async def test_a_waiting_reader_is_woken_by_a_delivery_and_by_the_end() -> None:
    async with InProcessBus() as bus, bus.subscribe("x") as sub:
        waiting = asyncio.create_task(sub.get())
        await asyncio.sleep(0)
        await bus.publish("x", _cancel("t1"))
        assert (await asyncio.wait_for(waiting, 1)).event == _cancel("t1")
        ending = asyncio.create_task(sub.get())
        await asyncio.sleep(0)
        sub.close()
        with pytest.raises(BusClosedError):
            await asyncio.wait_for(ending, 1)


async def test_a_subscription_has_one_reader_at_a_time() -> None:
    async with InProcessBus() as bus, bus.subscribe("x") as sub:
        first = asyncio.create_task(sub.get())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="a reader already"):
            await sub.get()
        first.cancel()
