"""The event bus: one protocol, an in-process bus (embedded default) and an MQTT bus."""

from agent.bus.base import Delivery, EventBus, Subscription
from agent.bus.inprocess import InProcessBus

__all__ = ["Delivery", "EventBus", "InProcessBus", "Subscription"]
