"""The event bus: one protocol; an in-process bus (embedded default), the same linked
across one machine's serving processes through a hub, and an MQTT bus."""

from agent.bus.base import Delivery, EventBus, Subscription
from agent.bus.inprocess import InProcessBus
from agent.bus.link import BusHub, LinkedBus

__all__ = ["BusHub", "Delivery", "EventBus", "InProcessBus", "LinkedBus", "Subscription"]
