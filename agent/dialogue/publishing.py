"""A turn's events on their way to its client, in order, without a round trip between them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from agent import topics
from agent.bus.base import EventBus
from agent.events import Event, HandoffRequested, ReplyEnded, TurnFailed

__all__ = ["TurnEvents"]


class TurnEvents:
    """Publishes one turn's events; the pipeline's `Publish`.

    Each event is sent at once, behind the ones before it, and the call returns
    without waiting for its delivery: on MQTT, a wait for each PUBACK would put
    three broker round trips before the first reply token, and one after every
    token. The turn's last event (`ReplyEnded` or `TurnFailed`) waits for all of
    them to be delivered, so a turn is complete in the ledger only once its client
    has been sent everything, and a delivery that failed fails the turn there.
    """

    __slots__ = ("_bus", "_handoff", "_observe", "_reply", "_unsettled")

    def __init__(
        self, bus: EventBus, session_id: str, *, observe: Callable[[ReplyEnded], None]
    ) -> None:
        """`observe` sees each `ReplyEnded` before it goes out (the metrics)."""
        self._bus = bus
        self._reply = topics.reply(session_id)
        self._handoff = topics.handoff(session_id)  # for the help desk
        self._observe = observe
        self._unsettled: list[asyncio.Future[None]] = []

    async def __call__(self, event: Event) -> None:
        if isinstance(event, ReplyEnded):
            self._observe(event)
        topic = self._handoff if isinstance(event, HandoffRequested) else self._reply
        sent = self._bus.publish_nowait(topic, event)
        if sent.done():
            sent.result()  # raises if it failed already
        else:
            self._unsettled.append(sent)
        if self._unsettled and isinstance(event, ReplyEnded | TurnFailed):
            unsettled, self._unsettled = self._unsettled, []
            await asyncio.gather(*unsettled)

    def withdraw(self) -> None:
        """Another worker has the turn: what is not yet sent stays unsent."""
        for sent in self._unsettled:
            sent.cancel()
        self._unsettled.clear()
