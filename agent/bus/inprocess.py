"""The embedded event bus: events pass between tasks of one process, never serialised."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Collection, Container
from contextlib import asynccontextmanager
from types import TracebackType

from agent.bus.base import (
    DEFAULT_MAX_QUEUED,
    Delivery,
    Subscription,
    literal_start,
    offer_to_group,
    topic_matches,
)
from agent.errors import BusClosedError
from agent.events import Event

__all__ = ["InProcessBus"]

_NO_GROUPS: tuple[str, ...] = ()


class InProcessBus:
    """An `EventBus` inside one process, with MQTT's matching and shared-group rules.

    Use it as an async context manager; leaving it ends every subscription.
    Reusable, not reentrant.
    """

    def __init__(self) -> None:
        # Exact filters are looked up by topic; only wildcard filters are scanned, and
        # only those whose literal start the topic has are matched level by level.
        self._exact: dict[str, list[Subscription]] = {}
        self._wildcard: list[Subscription] = []
        self._wildcard_starts: dict[Subscription, str] = {}
        self._round_robin = itertools.count()
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    async def __aenter__(self) -> InProcessBus:
        self._running = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop now: every subscription ends (its readers get `BusClosedError`)."""
        self._running = False
        for subscription in [*self._wildcard, *itertools.chain(*self._exact.values())]:
            subscription.close()
        self._exact.clear()
        self._wildcard.clear()
        self._wildcard_starts.clear()

    async def publish(self, topic: str, event: Event) -> None:
        """Deliver at once; never waits. Safe to cancel."""
        self.publish_nowait(topic, event)

    def publish_nowait(self, topic: str, event: Event) -> asyncio.Future[None]:
        """Deliver at once; the future is resolved already."""
        if not self._running:
            raise BusClosedError("the in-process bus is not running")
        self.deliver(topic, event)
        delivered = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered

    def deliver(
        self, topic: str, event: Event, *, only: Container[str] | None = None
    ) -> Collection[str]:
        """Offer `event` to this process's matching subscriptions; return the groups served.

        Every ungrouped subscription gets it, and one member of each group: of
        every group when `only` is None (a local publish), else of the groups in
        `only` (an event another process routed here for them). A group served
        is one whose member took the event; a group whose members have all ended
        is not.
        """
        delivery = Delivery(topic, event)
        groups: dict[str, list[Subscription]] | None = None
        matching: Collection[Subscription] = self._exact.get(topic, ())
        if self._wildcard:
            starts = self._wildcard_starts
            matching = [
                *matching,
                *(
                    s
                    for s in self._wildcard
                    if topic.startswith(starts[s]) and topic_matches(s.topic_filter, topic)
                ),
            ]
        for subscription in matching:
            group = subscription.group
            if group is None:
                subscription.offer(delivery)
            elif only is None or group in only:
                if groups is None:
                    groups = {}
                groups.setdefault(group, []).append(subscription)
        if groups is None:
            return _NO_GROUPS
        return [
            group
            for group, members in groups.items()
            if offer_to_group(members, delivery, next(self._round_robin))
        ]

    @asynccontextmanager
    async def subscribe(
        self,
        topic_filter: str,
        *,
        group: str | None = None,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> AsyncIterator[Subscription]:
        if not self._running:
            raise BusClosedError("the in-process bus is not running")
        subscription = Subscription(topic_filter, group, max_queued)
        wildcard = "+" in topic_filter or "#" in topic_filter
        members = self._wildcard if wildcard else self._exact.setdefault(topic_filter, [])
        members.append(subscription)
        if wildcard:
            self._wildcard_starts[subscription] = literal_start(topic_filter)
        try:
            yield subscription
        finally:
            subscription.close()
            if subscription in members:
                members.remove(subscription)
            self._wildcard_starts.pop(subscription, None)
            if not wildcard and not members and self._exact.get(topic_filter) is members:
                del self._exact[topic_filter]
