"""The broker settings' reconnect backoff: doubling from the minimum, capped, jittered."""

from __future__ import annotations

from agent.bus.mqtt_settings import MqttSettings


def test_the_reconnect_delay_doubles_up_to_its_cap_and_takes_the_jitter() -> None:
    settings = MqttSettings(reconnect_min_s=0.1, reconnect_max_s=1.0)
    delays = [settings.reconnect_delay(attempt, jitter=1.0) for attempt in range(6)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert settings.reconnect_delay(2, jitter=0.5) == 0.2
    assert settings.reconnect_delay(10_000, jitter=1.0) == 1.0  # no overflow
