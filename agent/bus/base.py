"""The `EventBus` seam and the subscription queue both buses share.

Overflow policy: every subscription has a bounded queue (`max_queued`). A
subscriber that falls that far behind is cut off — its next read raises
`BusOverflowError` — instead of stalling the publisher or every other
subscriber. Consumers of a session's replies (a gateway connection) close that
session with an `overloaded` error; nothing else is affected.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from agent.errors import BusClosedError, BusOverflowError
from agent.events import Event

__all__ = [
    "DEFAULT_MAX_QUEUED",
    "Delivery",
    "EventBus",
    "Subscription",
    "literal_start",
    "offer_to_group",
    "topic_matches",
]

DEFAULT_MAX_QUEUED = 10_000


@dataclass(frozen=True, slots=True)
class Delivery:
    topic: str
    event: Event


class EventBus(Protocol):
    """Publish events to topics; subscribe to topic filters (`+` and `#` wildcards).

    Subscribers that pass the same `group` share the matching events: each
    event goes to exactly one of them (MQTT v5 shared subscriptions).
    """

    async def publish(self, topic: str, event: Event) -> None:
        """Deliver `event` to every matching subscription (one per group).

        Not safe to cancel on the MQTT bus once the packet is on the wire: the
        event may or may not have been delivered.
        """
        ...

    def publish_nowait(self, topic: str, event: Event) -> asyncio.Future[None]:
        """Send `event` on its way now, behind every event published before it.

        The future resolves once it is delivered (on MQTT: acknowledged by the
        broker), so a turn's events go out one after another without a round
        trip between them, and their delivery is awaited once, at the end.
        """
        ...

    def subscribe(
        self,
        topic_filter: str,
        *,
        group: str | None = None,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe for the duration of the `async with` block."""
        ...


class Subscription:
    """A bounded stream of deliveries for one reader; iterate it with `async for`.

    A deque and one waiting future rather than an `asyncio.Queue`: every session holds
    subscriptions, and a queue (three deques and an event) costs about 2 KiB more each
    (docs/benchmarks.md, idle sessions).
    """

    __slots__ = ("_closed", "_items", "_limit", "_overflowed", "_reader", "group", "topic_filter")

    def __init__(self, topic_filter: str, group: str | None, max_queued: int) -> None:
        self.topic_filter = topic_filter
        self.group = group
        self._items: deque[Delivery] = deque()
        self._limit = max_queued
        self._reader: asyncio.Future[None] | None = None
        self._overflowed = False
        self._closed = False

    @property
    def closed(self) -> bool:
        """Ended or cut off: a group's events must go to another member."""
        return self._closed

    @property
    def queued(self) -> int:
        """Deliveries waiting to be read."""
        return len(self._items)

    def offer(self, delivery: Delivery) -> None:
        """Queue a delivery without waiting; overflow cuts the subscriber off."""
        if self._closed:
            return
        if len(self._items) >= self._limit:
            self._overflowed = True
            self.close()
            return
        self._items.append(delivery)
        self._wake()

    def close(self) -> None:
        """End the stream; a pending or later read returns (or raises on overflow)."""
        if not self._closed:
            self._closed = True
            self._wake()

    def _wake(self) -> None:
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    async def get(self) -> Delivery:
        """The next delivery. Safe to cancel: nothing is lost.

        Raises `BusOverflowError` if this subscriber fell behind and
        `BusClosedError` once the subscription has ended and its deliveries are read.
        """
        while True:
            if self._overflowed:
                raise BusOverflowError(f"subscriber to {self.topic_filter!r} fell behind")
            if self._items:
                return self._items.popleft()
            if self._closed:
                raise BusClosedError(f"subscription to {self.topic_filter!r} has ended")
            if self._reader is not None:
                raise RuntimeError(f"subscription to {self.topic_filter!r} has a reader already")
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while True:
            try:
                yield await self.get()
            except BusClosedError:
                return


def offer_to_group(members: list[Subscription], delivery: Delivery, turn: int) -> bool:
    """Give a group's event to one open member, starting at `turn` (round robin).

    Returns whether one took it: false when every member has ended.
    """
    for step in range(len(members)):
        member = members[(turn + step) % len(members)]
        if not member.closed:
            member.offer(delivery)
            return True
    return False


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether `topic` matches an MQTT topic filter with `+` and `#` wildcards."""
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def literal_start(topic_filter: str) -> str:
    """A wildcard filter up to its first wildcard: every topic it matches starts with this.

    A `#` also matches its parent level (`a/#` matches `a`), so its `/` is left out.
    A filter without wildcards is returned whole.
    """
    cuts = [i for i in (topic_filter.find("+"), topic_filter.find("#")) if i >= 0]
    if not cuts:
        return topic_filter
    cut = min(cuts)
    start = topic_filter[:cut]
    return start.removesuffix("/") if topic_filter[cut] == "#" else start
