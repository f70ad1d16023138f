"""The MQTT bus against a real Mosquitto: delivery, groups, bad input, outages."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import aiomqtt
import pytest
from structlog.testing import capture_logs

from agent.bus.base import Delivery, Subscription
from agent.bus.mqtt import MqttBus, MqttSettings
from agent.errors import BusClosedError, BusError, BusOverflowError
from agent.events import Cancel, Event, Feedback, ReplyDelta, ReplyEnded, UserTurn, encode
from tests.fixtures.mqtt import PrivateBroker
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

# Only to keep a broken test from hanging; nothing here asserts on time.
HANG = 30.0


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test's own, so parallel runs on one broker never meet."""
    return f"hltest/{uuid.uuid4().hex}"


def settings_for(host: str, port: int, **overrides: Any) -> MqttSettings:
    return MqttSettings(host=host, port=port, **overrides)


def turn(session: str, seq: int = 1) -> UserTurn:
    return UserTurn(
        session_id=session,
        user_id="user-1",
        turn_id=f"t{seq}",
        seq=seq,
        text="I waited an hour on the phone.",
        sent_at=1.0,
    )


async def take(subscription: Subscription, count: int) -> list[Delivery]:
    got: list[Delivery] = []
    async with asyncio.timeout(HANG):
        while len(got) < count:
            got.append(await subscription.get())
    return got


async def split(subscriptions: Sequence[Subscription], count: int) -> list[list[Delivery]]:
    """Read from every subscription until `count` deliveries arrived between them."""
    got: list[list[Delivery]] = [[] for _ in subscriptions]
    pending = {asyncio.ensure_future(sub.get()): i for i, sub in enumerate(subscriptions)}
    try:
        async with asyncio.timeout(HANG):
            while sum(map(len, got)) < count:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    index = pending.pop(task)
                    got[index].append(task.result())
                    pending[asyncio.ensure_future(subscriptions[index].get())] = index
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return got


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A local port that is bound but not listening, so connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


def seqs(deliveries: list[Delivery]) -> list[int]:
    return [d.event.seq for d in deliveries if isinstance(d.event, UserTurn)]


async def test_roundtrip_of_several_event_types(mqtt_broker: tuple[str, int], prefix: str) -> None:
    events: list[Event] = [
        turn("s1"),
        ReplyDelta(session_id="s1", turn_id="t1", seq=0, text="I'm sorry"),
        ReplyEnded(
            session_id="s1",
            turn_id="t1",
            text="I'm sorry to hear that.",
            interrupted=False,
            generator="template",
            ttft_ms=3.5,
            total_ms=12.0,
            stages={"emotion": 1.5},
        ),
        Feedback(session_id="s1", user_id="user-1", turn_id="t1", score=5),
        Cancel(session_id="s1", turn_id="t1", reason="barge_in"),
    ]
    topic = f"{prefix}/reply/s1"
    async with MqttBus(settings_for(*mqtt_broker)) as bus, bus.subscribe(topic) as sub:
        for event in events:
            await bus.publish(topic, event)
        got = await take(sub, len(events))
    assert [d.event for d in got] == events
    assert {d.topic for d in got} == {topic}


async def test_wildcard_filter_matches_every_session(
    mqtt_broker: tuple[str, int], prefix: str
) -> None:
    async with (
        MqttBus(settings_for(*mqtt_broker)) as bus,
        bus.subscribe(f"{prefix}/reply/+") as sub,
    ):
        await bus.publish(f"{prefix}/reply/a", turn("a"))
        await bus.publish(f"{prefix}/other/b", turn("b"))  # must not match
        await bus.publish(f"{prefix}/reply/c", turn("c"))
        got = await take(sub, 2)
    assert [d.topic for d in got] == [f"{prefix}/reply/a", f"{prefix}/reply/c"]


async def test_group_splits_across_buses_and_plain_subscriber_sees_all(
    mqtt_broker: tuple[str, int], prefix: str
) -> None:
    count = 40
    filter_ = f"{prefix}/turn/+"
    settings = settings_for(*mqtt_broker)
    async with (
        MqttBus(settings) as worker_a,
        MqttBus(settings) as worker_b,
        MqttBus(settings) as observer,
        worker_a.subscribe(filter_, group=f"workers-{prefix[-8:]}") as sub_a,
        worker_b.subscribe(filter_, group=f"workers-{prefix[-8:]}") as sub_b,
        observer.subscribe(filter_) as sub_all,
    ):
        for seq in range(1, count + 1):
            await observer.publish(f"{prefix}/turn/s{seq}", turn(f"s{seq}", seq))
        seen = await take(sub_all, count)
        share_a, share_b = await split([sub_a, sub_b], count)

    assert [d.event for d in seen] == [turn(f"s{seq}", seq) for seq in range(1, count + 1)]
    assert share_a
    assert share_b
    assert sorted(seqs(share_a) + seqs(share_b)) == list(range(1, count + 1))


async def test_same_group_twice_in_one_process_delivers_once(
    mqtt_broker: tuple[str, int], prefix: str
) -> None:
    topic = f"{prefix}/turn/s1"
    async with (
        MqttBus(settings_for(*mqtt_broker)) as bus,
        bus.subscribe(topic, group="g") as first,
        bus.subscribe(topic, group="g") as second,
        bus.subscribe(topic, group="other") as other,
        bus.subscribe(topic) as plain,
    ):
        for seq in range(1, 5):
            await bus.publish(topic, turn("s1", seq))
        assert len(await take(other, 4)) == 4
        assert len(await take(plain, 4)) == 4
        # The dispatcher handled all four copies for "other" and "plain"; the
        # group "g" gets one copy of each, shared by its two local members.
        got_first, got_second = await split([first, second], 4)
    assert sorted(seqs(got_first) + seqs(got_second)) == [1, 2, 3, 4]


async def test_invalid_payloads_are_dropped_and_logged(
    mqtt_broker: tuple[str, int], prefix: str
) -> None:
    topic = f"{prefix}/turn/s1"
    host, port = mqtt_broker
    with capture_logs() as logs:
        async with (
            MqttBus(settings_for(host, port)) as bus,
            bus.subscribe(topic) as sub,
            aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5) as raw,
        ):
            await raw.publish(topic, b"{not json", qos=1)
            await raw.publish(topic, b'{"type": "user_turn", "v": 1, "text": "x"}', qos=1)
            await raw.publish(topic, b'{"type": "user_turn", "v": 2}', qos=1)
            await raw.publish(topic, encode(turn("s1")), qos=1)
            got = await take(sub, 1)
    assert got[0].event == turn("s1")
    warnings = [entry for entry in logs if entry["event"] == "mqtt.invalid_payload"]
    assert len(warnings) == 3
    for entry in warnings:
        assert entry["log_level"] == "warning"
        assert entry["topic"] == topic
        assert "error" in entry
        assert "payload" not in entry


async def test_overflow_cuts_the_slow_subscriber_off(
    mqtt_broker: tuple[str, int], prefix: str
) -> None:
    topic = f"{prefix}/reply/s1"
    async with (
        MqttBus(settings_for(*mqtt_broker)) as bus,
        bus.subscribe(topic, max_queued=2) as slow,
        bus.subscribe(topic) as witness,
    ):
        for seq in range(5):
            await bus.publish(topic, ReplyDelta(session_id="s1", turn_id="t1", seq=seq, text="."))
        await take(witness, 5)  # the dispatcher has offered all five to both
        with pytest.raises(BusOverflowError):
            await slow.get()
        # The other subscriber is unaffected.
        await bus.publish(topic, turn("s1"))
        assert (await take(witness, 1))[0].event == turn("s1")


async def test_outside_the_context_the_bus_is_closed(mqtt_broker: tuple[str, int]) -> None:
    bus = MqttBus(settings_for(*mqtt_broker))
    with pytest.raises(BusClosedError):
        await bus.publish("hltest/x", turn("s1"))
    with pytest.raises(BusClosedError):
        async with bus.subscribe("hltest/x"):
            pass
    async with bus:
        async with bus.subscribe(f"hltest/{uuid.uuid4().hex}") as sub:
            pass
        with pytest.raises(BusClosedError):
            await sub.get()
    with pytest.raises(BusClosedError):
        await bus.publish("hltest/x", turn("s1"))


async def test_leaving_the_bus_ends_open_subscriptions(
    mqtt_broker: tuple[str, int], prefix: str
) -> None:
    got: list[Delivery] = []

    async def consume(sub: Subscription) -> None:
        got.extend([delivery async for delivery in sub])

    async with asyncio.timeout(HANG), asyncio.TaskGroup() as tasks:
        async with MqttBus(settings_for(*mqtt_broker)) as bus:
            subscribing = bus.subscribe(f"{prefix}/#")
            consumer = tasks.create_task(consume(await subscribing.__aenter__()))
        await consumer  # ends: leaving the bus closed the subscription
        await subscribing.__aexit__(None, None, None)
    assert got == []


async def test_connect_to_nothing_raises_bus_error() -> None:
    with refused_port() as port:
        settings = MqttSettings(host="127.0.0.1", port=port, connect_timeout_s=0.5)
        with pytest.raises(BusError, match="cannot connect"):
            async with asyncio.timeout(HANG), MqttBus(settings):
                pass


async def test_subscription_survives_broker_restart(
    private_broker: PrivateBroker, prefix: str
) -> None:
    settings = settings_for(
        private_broker.host, private_broker.port, reconnect_min_s=0.05, reconnect_max_s=0.5
    )
    topic = f"{prefix}/turn/s1"
    async with MqttBus(settings) as bus, bus.subscribe(topic) as sub:
        await bus.publish(topic, turn("s1", 1))
        assert (await take(sub, 1))[0].event == turn("s1", 1)
        first = bus.connected_since
        assert first is not None

        private_broker.stop()
        await eventually(lambda: bus.connected_since is None, within=HANG)
        private_broker.start()

        await bus.publish(topic, turn("s1", 2))  # waits for the reconnect
        assert (await take(sub, 1))[0].event == turn("s1", 2)
        # Listeners judge silence from the reconnect on, not from the first connection.
        assert (bus.connected_since or 0.0) > first


async def test_subscription_survives_restart_without_broker_persistence(
    private_broker: PrivateBroker, prefix: str
) -> None:
    """The session is gone with the broker's memory: the bus must subscribe again."""
    settings = settings_for(
        private_broker.host, private_broker.port, reconnect_min_s=0.05, reconnect_max_s=0.5
    )
    topic = f"{prefix}/turn/s1"
    async with MqttBus(settings) as bus, bus.subscribe(topic, group="workers") as sub:
        private_broker.stop()
        for data_file in private_broker.config.parent.glob("data/*"):
            data_file.unlink()
        private_broker.start()
        await bus.publish(topic, turn("s1", 2))
        assert (await take(sub, 1))[0].event == turn("s1", 2)


async def test_publish_while_broker_is_down_raises_bus_error(
    private_broker: PrivateBroker, prefix: str
) -> None:
    settings = settings_for(
        private_broker.host,
        private_broker.port,
        publish_timeout_s=1.0,
        reconnect_min_s=0.05,
        reconnect_max_s=0.5,
    )
    async with MqttBus(settings) as bus:
        private_broker.stop()
        with pytest.raises(BusError, match="not acknowledged"):
            async with asyncio.timeout(HANG):
                await bus.publish(f"{prefix}/turn/s1", turn("s1"))


async def test_events_sent_without_waiting_arrive_in_the_order_published(
    mqtt_broker: tuple[str, int], prefix: str
) -> None:
    """More than the client lets be in flight at once: the rest queue, in order."""
    host, port = mqtt_broker
    topic = f"{prefix}/turn/s1"
    async with MqttBus(settings_for(host, port)) as bus, bus.subscribe(topic) as sub:
        acked = [bus.publish_nowait(topic, turn("s1", seq)) for seq in range(1, 301)]
        await bus.publish(topic, turn("s1", 301))
        async with asyncio.timeout(HANG):
            await asyncio.gather(*acked)
        got = await take(sub, 301)
    assert seqs(got) == list(range(1, 302))


async def test_a_dropped_connection_sends_what_it_left_unacknowledged_again_in_order(
    mqtt_broker: tuple[str, int], prefix: str
) -> None:
    host, port = mqtt_broker
    topic = f"{prefix}/turn/s1"
    count = 400  # with its copies sent again, within what the broker queues for `watcher`
    async with (
        TcpProxy(host, port) as proxy,
        MqttBus(settings_for(host, port)) as watcher,
        watcher.subscribe(topic) as sub,
        MqttBus(
            settings_for("127.0.0.1", proxy.port, reconnect_min_s=0.05, reconnect_max_s=0.2)
        ) as bus,
    ):
        first_connection = bus.connected_since
        acked = [bus.publish_nowait(topic, turn("s1", seq)) for seq in range(1, count + 1)]
        await eventually(acked[0].done, within=HANG)
        unacknowledged = sum(not a.done() for a in acked)
        await proxy.cut()
        await proxy.restore()
        async with asyncio.timeout(HANG):
            await asyncio.gather(*acked)
        reconnected = bus.connected_since
        seen: dict[int, None] = {}  # first arrivals, in order
        async with asyncio.timeout(HANG):
            while len(seen) < count:
                delivered = (await sub.get()).event
                assert isinstance(delivered, UserTurn)
                seen.setdefault(delivered.seq, None)
    assert unacknowledged > 0
    assert (reconnected or 0.0) > (first_connection or math.inf)
    assert list(seen) == list(range(1, count + 1))


async def test_closing_the_bus_fails_what_it_could_not_send(
    mqtt_broker: tuple[str, int], prefix: str
) -> None:
    host, port = mqtt_broker
    async with TcpProxy(host, port) as proxy:
        async with MqttBus(
            settings_for("127.0.0.1", proxy.port, reconnect_min_s=0.05, reconnect_max_s=0.2)
        ) as bus:
            await proxy.cut()
            await eventually(lambda: not bus.connected, within=HANG)
            acked = bus.publish_nowait(f"{prefix}/turn/s1", turn("s1"))
        with pytest.raises(BusClosedError, match="closed before"):
            await acked
