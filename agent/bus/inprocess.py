"""The embedded event bus: events pass between tasks of one process, never serialised."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType

from agent.bus.base import (
    DEFAULT_MAX_QUEUED,
    Delivery,
    Subscription,
    offer_to_group,
    topic_matches,
)
from agent.errors import BusClosedError
from agent.events import Event

__all__ = ["InProcessBus"]


class InProcessBus:
    """An `EventBus` inside one process, with MQTT's matching and shared-group rules.

    Use it as an async context manager; leaving it ends every subscription.
    """

    def __init__(self) -> None:
        # Exact filters are looked up by topic; only wildcard filters are scanned, and
        # only those whose literal start the topic has are matched level by level.
        self._exact: dict[str, list[Subscription]] = {}
        self._wildcard: list[Subscription] = []
        self._wildcard_starts: dict[Subscription, str] = {}
        self._round_robin = itertools.count()
        self._running = False

    async def __aenter__(self) -> InProcessBus:
        self._running = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._running = False
        for subscription in [*self._wildcard, *itertools.chain(*self._exact.values())]:
            subscription.close()
        self._exact.clear()
        self._wildcard.clear()
        self._wildcard_starts.clear()

    async def publish(self, topic: str, event: Event) -> None:
        """Deliver at once; never waits. Safe to cancel."""
        if not self._running:
            raise BusClosedError("the in-process bus is not running")
        delivery = Delivery(topic, event)
        groups: dict[str, list[Subscription]] = {}
        matching = itertools.chain(
            self._exact.get(topic, ()),
            (
                s
                for s in self._wildcard
                if topic.startswith(self._wildcard_starts[s])
                and topic_matches(s.topic_filter, topic)
            ),
        )
        for subscription in matching:
            if subscription.group is None:
                subscription.offer(delivery)
            else:
                groups.setdefault(subscription.group, []).append(subscription)
        for members in groups.values():
            offer_to_group(members, delivery, next(self._round_robin))

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
            self._wildcard_starts[subscription] = _literal_start(topic_filter)
        try:
            yield subscription
        finally:
            subscription.close()
            if subscription in members:
                members.remove(subscription)
            self._wildcard_starts.pop(subscription, None)
            if not wildcard and not members:
                self._exact.pop(topic_filter, None)


def _literal_start(topic_filter: str) -> str:
    """The filter up to its first wildcard: every topic it matches starts with this.

    A `#` also matches its parent level (`a/#` matches `a`), so its `/` is left out.
    """
    cut = min(i for i in (topic_filter.find("+"), topic_filter.find("#")) if i >= 0)
    start = topic_filter[:cut]
    return start.removesuffix("/") if topic_filter[cut] == "#" else start
