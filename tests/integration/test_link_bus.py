"""The linked bus on real Unix sockets: a hub and several links, in one loop and in processes."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import socket
import struct
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
import uvloop
from structlog.testing import capture_logs

from agent.bus import BusHub, LinkedBus
from agent.bus.base import Delivery, Subscription
from agent.bus.link.wire import (
    MAX_SOCKET_PATH_BYTES,
    Destination,
    Hello,
    PeerSubscribed,
    Publish,
    Ready,
    Subscribe,
    encode_frame,
    parse_from_hub,
)
from agent.bus.link.wire import Interest as WireInterest
from agent.errors import BusClosedError, BusError, ConfigError
from agent.events import Cancel, Event
from tests.support.waiting import eventually

# Only to keep a broken test from hanging; nothing here asserts on time.
HANG = 30.0


def cancel(turn: str, session: str = "s") -> Cancel:
    return Cancel(session_id=session, turn_id=turn, reason="client")


@pytest.fixture
def hub_path() -> Iterator[Path]:
    """A socket path in a fresh private directory, short enough for any test name."""
    with tempfile.TemporaryDirectory(prefix="hl-") as folder:
        yield Path(folder) / "bus"


@contextlib.asynccontextmanager
async def links(path: Path, *names: str) -> AsyncIterator[list[LinkedBus]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(LinkedBus(path, name=name)) for name in names]


async def take(subscription: Subscription, count: int) -> list[Delivery]:
    async with asyncio.timeout(HANG):
        return [await subscription.get() for _ in range(count)]


async def drained(subscription: Subscription) -> list[Delivery]:
    """What is queued for `subscription` now (reading it does not wait)."""
    return [await subscription.get() for _ in range(subscription.queued)]


async def synced(publisher: LinkedBus, receivers: Sequence[Subscription], topic: str) -> None:
    """Publish a marker on `topic` and wait until every receiver has it.

    Each process's events reach another in the order published, so once the marker
    is in, everything `publisher` sent before it has been delivered there.
    """
    await publisher.publish(topic, cancel("marker"))
    async with asyncio.timeout(HANG):
        for receiver in receivers:
            while (await receiver.get()).event != cancel("marker"):
                pass


# Across links


async def test_a_subscription_gets_what_another_process_publishes(hub_path: Path) -> None:
    async with (
        BusHub(hub_path) as hub,
        links(hub_path, "a", "b") as (a, b),
        a.subscribe("hl/v1/session/+") as remote,
        b.subscribe("hl/v1/#") as own,
    ):
        await eventually(lambda: b.interested_peers("hl/v1/session/s1") == 1, within=HANG)
        assert set(hub.links) == {"a", "b"}
        events = [cancel(f"t{n}") for n in range(5)]
        for event in events:
            await b.publish("hl/v1/session/s1", event)
        assert [d.event for d in await take(remote, 5)] == events
        assert [d.event for d in await take(own, 5)] == events  # its own included
        assert b.forwarded == 5
        assert a.received == 5


async def test_an_event_nobody_else_wants_never_leaves_its_process(hub_path: Path) -> None:
    async with (
        BusHub(hub_path),
        links(hub_path, "a", "b") as (a, b),
        a.subscribe("hl/v1/reply/s1") as mine,
        b.subscribe("hl/v1/reply/s2") as theirs,
        b.subscribe("hl/v1/turn/+", group="workers"),
    ):
        await eventually(lambda: a.interested_peers("hl/v1/reply/s2") == 1, within=HANG)
        for n in range(1_000):
            await a.publish("hl/v1/reply/s1", cancel(f"t{n}", "s1"))
        assert len(await take(mine, 1_000)) == 1_000
        assert a.forwarded == 0
        assert b.received == 0
        assert theirs.queued == 0


async def test_a_group_event_goes_to_exactly_one_member_across_processes(
    hub_path: Path,
) -> None:
    async with (
        BusHub(hub_path),
        links(hub_path, "publisher", "a", "b", "c") as (publisher, a, b, c),
        contextlib.AsyncExitStack() as stack,
    ):
        members = {
            name: [
                await stack.enter_async_context(bus.subscribe("work/+", group="workers"))
                for _ in range(count)
            ]
            for name, bus, count in (("a", a, 2), ("b", b, 1), ("c", c, 1))
        }
        markers = [await stack.enter_async_context(bus.subscribe("marker")) for bus in (a, b, c)]
        await eventually(
            lambda: (
                publisher.interested_peers("work/1") == 3
                and publisher.interested_peers("marker") == 3
            ),
            within=HANG,
        )
        for n in range(100):
            await publisher.publish(f"work/{n}", cancel(f"t{n}"))
        await synced(publisher, markers, "marker")

        got = {name: [d for s in subs for d in await drained(s)] for name, subs in members.items()}
        turns = [d.event.turn_id for deliveries in got.values() for d in deliveries]
        assert sorted(turns) == sorted(f"t{n}" for n in range(100))  # each exactly once
        assert all(got.values())  # round robin: every process took a share
        assert publisher.forwarded == 101


async def test_a_member_in_the_publishing_process_takes_every_group_event(
    hub_path: Path,
) -> None:
    async with (
        BusHub(hub_path),
        links(hub_path, "a", "b") as (a, b),
        a.subscribe("hl/v1/turn/+", group="workers") as local,
        b.subscribe("hl/v1/turn/+", group="workers") as remote,
        b.subscribe("marker") as marker,
    ):
        await eventually(lambda: a.interested_peers("marker") == 1, within=HANG)
        for n in range(100):
            await a.publish(f"hl/v1/turn/s{n}", cancel(f"t{n}"))
        assert a.forwarded == 0  # not one serialised
        await synced(a, [marker], "marker")
        assert len(await take(local, 100)) == 100
        assert remote.queued == 0
        assert b.received == 1  # the marker alone


async def test_a_late_link_and_a_late_subscriber_are_reached(hub_path: Path) -> None:
    async with (
        BusHub(hub_path),
        links(hub_path, "early") as (early,),
        early.subscribe("ops/#") as watcher,
    ):
        # A link that joins late gets the table at once: no waiting.
        async with links(hub_path, "late") as (late,):
            assert late.interested_peers("ops") == 1
            await late.publish("ops", cancel("t1"))
            assert [d.event for d in await take(watcher, 1)] == [cancel("t1")]

            # A subscription made later is reached once its interest has propagated.
            async with late.subscribe("news/+") as news:
                await eventually(lambda: early.interested_peers("news/1") == 1, within=HANG)
                await early.publish("news/1", cancel("t2"))
                assert [d.event for d in await take(news, 1)] == [cancel("t2")]
            await eventually(lambda: early.interested_peers("news/1") == 0, within=HANG)
            await early.publish("news/1", cancel("t3"))
            assert early.forwarded == 1
        # A link that leaves is forgotten.
        async with links(hub_path, "third") as (third,):
            assert third.interested_peers("ops") == 1
            assert third.interested_peers("news/1") == 0


async def test_two_processes_on_one_filter_and_one_leaves(hub_path: Path) -> None:
    async with (
        BusHub(hub_path),
        links(hub_path, "publisher", "a", "b") as (publisher, a, b),
        a.subscribe("ops/+") as staying,
    ):
        async with b.subscribe("ops/+"), b.subscribe("ops/+"):
            await eventually(lambda: publisher.interested_peers("ops/1") == 2, within=HANG)
        await eventually(lambda: publisher.interested_peers("ops/1") == 1, within=HANG)
        await publisher.publish("ops/1", cancel("t1"))
        assert [d.event for d in await take(staying, 1)] == [cancel("t1")]
        assert b.received == 0


# The hub going away, and bad input


async def test_the_hub_going_away_ends_every_link_subscription(hub_path: Path) -> None:
    hub = BusHub(hub_path)
    async with hub, links(hub_path, "a") as (a,), a.subscribe("x") as sub, a.subscribe("y"):
        ended = asyncio.ensure_future(a.wait_closed())
        reader = asyncio.ensure_future(sub.get())
        with capture_logs() as logs:
            # The supervisor goes: its hub closes under running links (the second
            # leaving, at the end of the block, does nothing).
            await hub.__aexit__(None, None, None)
            async with asyncio.timeout(HANG):
                with pytest.raises(BusClosedError):
                    await reader
                await ended
        assert not a.connected
        assert [log["event"] for log in logs if log["log_level"] == "warning"] == [
            "bus_link.hub_lost"
        ]
        with pytest.raises(BusClosedError, match="went away"):
            await a.publish("x", cancel("t"))
        with pytest.raises(BusClosedError):
            async with a.subscribe("z"):
                pass
    assert not await asyncio.to_thread(hub_path.exists)


async def test_no_hub_is_a_clear_error(hub_path: Path) -> None:
    with pytest.raises(BusError, match="cannot reach the bus hub"):
        async with LinkedBus(hub_path, name="a", connect_timeout_s=1.0):
            pass
    with pytest.raises(ConfigError, match="shorter"):
        BusHub(hub_path.with_name("x" * 200))
    with pytest.raises(ConfigError, match="shorter"):
        LinkedBus(hub_path.with_name("x" * 200), name="a")


async def raw_client(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_unix_connection(str(path))


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">I", await reader.readexactly(4))
    return await reader.readexactly(size)


async def test_garbage_sent_to_the_hub_does_not_crash_it(hub_path: Path) -> None:
    async with (
        BusHub(hub_path, max_frame_bytes=1024) as hub,
        links(hub_path, "a", "b") as (a, b),
        a.subscribe("x") as sub,
    ):
        with capture_logs() as logs:
            # A frame that is not a message: logged and dropped, the connection kept.
            reader, writer = await raw_client(hub_path)
            writer.write(b"\x00\x00\x00\x03\x63ab")  # no such kind
            writer.write(encode_frame(Subscribe(WireInterest("x"))))  # before Hello: dropped
            await writer.drain()
            async with asyncio.timeout(HANG):
                assert await reader.read() == b""
            writer.close()

            # A length past the limit: the stream cannot be trusted, so it is cut.
            reader, writer = await raw_client(hub_path)
            writer.write(struct.pack(">I", 1 << 30) + b"junk")
            await writer.drain()
            async with asyncio.timeout(HANG):
                assert await reader.read() == b""
            writer.close()

            # A client that just goes away mid-frame.
            _, writer = await raw_client(hub_path)
            writer.write(b"\x00\x00\x00\x10abc")
            writer.close()
        await eventually(lambda: len(hub.links) == 2, within=HANG)
        events = {log["event"] for log in logs}
        assert {"bus_hub.invalid_frame", "bus_hub.protocol_error"} <= events
        assert "bus_hub.invalid_stream" in events

        await eventually(lambda: b.interested_peers("x") == 1, within=HANG)
        await b.publish("x", cancel("t1"))
        assert [d.event for d in await take(sub, 1)] == [cancel("t1")]


async def test_an_invalid_event_from_another_link_is_dropped(hub_path: Path) -> None:
    async with (
        BusHub(hub_path),
        links(hub_path, "a") as (a,),
        a.subscribe("x") as sub,
    ):
        reader, writer = await raw_client(hub_path)
        try:
            writer.write(encode_frame(Hello("rogue")))
            peer = None
            while True:
                async with asyncio.timeout(HANG):
                    message = parse_from_hub(await read_frame(reader))
                if isinstance(message, PeerSubscribed):
                    peer = message.peer
                if isinstance(message, Ready):
                    break
            assert peer is not None
            with capture_logs() as logs:
                for payload in (b"not json", b'{"type": "cancel"}'):
                    writer.write(encode_frame(Publish((Destination(peer),), "x", payload)))
                await writer.drain()
                await eventually(lambda: len(logs) == 2, within=HANG)
            assert {log["event"] for log in logs} == {"bus_link.invalid_event"}
            assert a.received == 0
        finally:
            writer.close()
            await writer.wait_closed()
        await a.publish("x", cancel("t1"))
        assert [d.event for d in await take(sub, 1)] == [cancel("t1")]


async def test_a_link_that_stops_reading_is_disconnected(hub_path: Path) -> None:
    async with (
        BusHub(hub_path, max_buffer_bytes=64 * 1024) as hub,
        links(hub_path, "a") as (a,),
    ):
        _, writer = await raw_client(hub_path)
        try:
            writer.write(encode_frame(Hello("stalled")))
            writer.write(encode_frame(Subscribe(WireInterest("x"))))
            await writer.drain()
            await eventually(lambda: a.interested_peers("x") == 1, within=HANG)
            with capture_logs() as logs:
                async with asyncio.timeout(HANG):
                    while "stalled" in hub.links:  # it never reads a byte
                        for n in range(100):
                            await a.publish("x", cancel(f"t{n}"))
                        await asyncio.sleep(0)
            assert "bus_hub.link_too_slow" in {log["event"] for log in logs}
            await eventually(lambda: a.interested_peers("x") == 0, within=HANG)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        assert a.connected


# Separate processes


def _serve(path: Path, name: str, on_uvloop: bool) -> None:
    """A child process: answer each `work/...` event on `done/<name>` until the hub goes."""

    async def main() -> None:
        async with (
            LinkedBus(path, name=name) as bus,
            bus.subscribe("work/+", group="workers") as work,
        ):
            async for delivery in work:
                try:
                    await bus.publish(f"done/{name}", delivery.event)
                except BusClosedError:
                    return
            await bus.wait_closed()

    if on_uvloop:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    else:
        asyncio.run(main())


async def test_processes_share_one_bus_and_stop_with_the_hub(hub_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_serve, args=(hub_path, name, on_uvloop), name=name)
        for name, on_uvloop in (("one", True), ("two", False))
    ]
    hub = BusHub(hub_path)
    try:
        async with hub, links(hub_path, "parent") as (parent,), parent.subscribe("done/+") as done:
            for child in children:
                child.start()
            await eventually(lambda: parent.interested_peers("work/1") == 2, within=60.0)
            sent: list[Event] = [cancel(f"t{n}") for n in range(50)]
            for n, event in enumerate(sent):
                await parent.publish(f"work/{n}", event)
            answers = await take(done, 50)
            assert sorted(d.event.turn_id for d in answers) == sorted(e.turn_id for e in sent)
            by_child = Counter(d.topic for d in answers)
            assert set(by_child) == {"done/one", "done/two"}  # both took a share
            assert parent.forwarded == 50
            assert parent.received == 50
        # The hub is gone: each child's subscription ends and the child exits by itself.
        for child in children:
            await asyncio.to_thread(child.join, HANG)
            assert child.exitcode == 0
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join()
            child.close()


def test_the_socket_path_check_refuses_only_what_the_os_would() -> None:
    with tempfile.TemporaryDirectory(prefix="hl-") as folder:
        path = Path(folder) / ("s" * (MAX_SOCKET_PATH_BYTES - len(folder) - 1))
        assert len(str(path)) == MAX_SOCKET_PATH_BYTES
        BusHub(path)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))
        with pytest.raises(ConfigError):
            BusHub(Path(str(path) + "s"))
