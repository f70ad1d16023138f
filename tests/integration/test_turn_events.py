"""A turn's events over the MQTT bus: sent without waiting, delivered before the turn ends."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from agent import topics
from agent.bus.mqtt import MqttBus, MqttSettings
from agent.dialogue.publishing import TurnEvents
from agent.errors import BusError
from agent.events import Event, ReplyDelta, ReplyEnded
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

HANG = 30.0  # only to keep a broken test from hanging


def ending(session_id: str) -> ReplyEnded:
    return ReplyEnded(
        session_id=session_id,
        turn_id="t1",
        text="done",
        interrupted=False,
        generator="template",
        ttft_ms=1.0,
        total_ms=2.0,
    )


async def test_a_turns_events_arrive_in_the_order_published(
    mqtt_broker: tuple[str, int],
) -> None:
    host, port = mqtt_broker
    session = f"s-{uuid.uuid4().hex}"
    observed: list[ReplyEnded] = []
    deltas = [
        ReplyDelta(session_id=session, turn_id="t1", seq=i, text=f"w{i} ") for i in range(200)
    ]
    async with (
        MqttBus(MqttSettings(host=host, port=port)) as bus,
        bus.subscribe(topics.reply(session)) as replies,
    ):
        events = TurnEvents(bus, session, observe=observed.append)
        for delta in deltas:
            await events(delta)
        await events(ending(session))
        got: list[Event] = []
        async with asyncio.timeout(HANG):
            while len(got) < len(deltas) + 1:
                got.append((await replies.get()).event)
    assert got == [*deltas, ending(session)]
    assert observed == [ending(session)]


async def test_a_delivery_that_failed_fails_the_turn_at_its_end(
    mqtt_broker: tuple[str, int],
) -> None:
    """The end itself goes through; an earlier event that did not fails the turn."""
    host, port = mqtt_broker
    session = f"s-{uuid.uuid4().hex}"
    async with TcpProxy(host, port) as proxy:
        settings = MqttSettings(
            host="127.0.0.1", port=proxy.port, publish_timeout_s=0.5, reconnect_min_s=0.05
        )
        async with MqttBus(settings) as bus:
            events = TurnEvents(bus, session, observe=lambda _: None)
            await proxy.cut()
            await eventually(lambda: not bus.connected, within=HANG)
            await events(ReplyDelta(session_id=session, turn_id="t1", seq=0, text="Hello"))
            # Published after the delta with the same timeout: once it has failed, so has the delta.
            with pytest.raises(BusError, match="not acknowledged"):
                await bus.publish(topics.reply(session), ending(session))
            await proxy.restore()
            await eventually(lambda: bus.connected, within=HANG)
            with pytest.raises(BusError, match="not acknowledged"):
                async with asyncio.timeout(HANG):
                    await events(ending(session))
