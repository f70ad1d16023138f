"""The MQTT bus's events on their way to the broker, in call order, until each PUBACK.

An event goes on the wire as soon as it is put here, behind every event put before it:
the client queues a packet in the first step of its publish task, and tasks take their
first step in the order they were made. What a dropped connection left unacknowledged
goes first on the next connection, in the order it was sent. Each event's future
resolves on its PUBACK, or fails with `BusError` once `timeout_s` has passed, or with
`BusClosedError` when the bus closes first.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog

from agent.errors import BusClosedError, BusError

__all__ = ["OutgoingEvents", "Send"]

_log = structlog.get_logger(__name__)

Send = Callable[[str, bytes], Coroutine[Any, Any, None]]  # a connection's QoS 1 publish


@dataclass(slots=True, eq=False)
class _Outgoing:
    """One event on its way to the broker, until its PUBACK (or its deadline)."""

    topic: str
    payload: bytes
    acked: asyncio.Future[None]
    expiry: asyncio.TimerHandle | None = None
    attempt: asyncio.Task[None] | None = None


class OutgoingEvents:
    """What the bus has published and the broker has not yet acknowledged."""

    def __init__(
        self,
        *,
        timeout_s: float,
        last_error: Callable[[], BaseException | None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        """`last_error` names the connection's trouble in a timeout's message; `on_error`
        hears of a publish the connection failed."""
        self._timeout_s = timeout_s
        self._last_error = last_error
        self._on_error = on_error
        self._send: Send | None = None
        # Not yet on the wire, in call order; and on it, awaiting a PUBACK, in the order
        # sent (a dict as an ordered set).
        self._unsent: deque[_Outgoing] = deque()
        self._unacked: dict[_Outgoing, None] = {}

    def put(self, topic: str, payload: bytes) -> asyncio.Future[None]:
        """Send now if connected, else on the next connection; cancelling the future
        before the event was sent withdraws it."""
        loop = asyncio.get_running_loop()
        outgoing = _Outgoing(topic, payload, loop.create_future())
        outgoing.expiry = loop.call_later(self._timeout_s, self._expire, outgoing)
        if self._send is not None and not self._unsent:
            self._start(self._send, outgoing)
        else:
            self._unsent.append(outgoing)
        return outgoing.acked

    def connected(self, send: Send) -> None:
        """A connection is up: what waited for one goes first, in the order published."""
        self._send = send
        while self._unsent:
            outgoing = self._unsent.popleft()
            if not outgoing.acked.done():
                self._start(send, outgoing)

    def disconnected(self) -> None:
        """The connection is gone: what it left unacknowledged goes first on the next one,
        in the order it was sent."""
        self._send = None
        resend = [o for o in self._unacked if not o.acked.done()]
        for outgoing in self._unacked:
            attempt, outgoing.attempt = outgoing.attempt, None
            if attempt is not None:
                attempt.cancel()
        self._unacked.clear()
        self._unsent.extendleft(reversed(resend))

    def close(self) -> None:
        """The bus is closing: fail whatever has not been acknowledged."""
        self.disconnected()
        while self._unsent:
            outgoing = self._unsent.popleft()
            if outgoing.expiry is not None:
                outgoing.expiry.cancel()
            if not outgoing.acked.done():
                closed = f"the MQTT bus closed before {outgoing.topic!r} was acknowledged"
                outgoing.acked.set_exception(BusClosedError(closed))

    def _start(self, send: Send, outgoing: _Outgoing) -> None:
        attempt = asyncio.ensure_future(send(outgoing.topic, outgoing.payload))
        outgoing.attempt = attempt
        self._unacked[outgoing] = None
        attempt.add_done_callback(functools.partial(self._sent, outgoing))

    def _sent(self, outgoing: _Outgoing, attempt: asyncio.Task[None]) -> None:
        if outgoing.attempt is not attempt or attempt.cancelled():
            return  # sent again on a later connection
        error = attempt.exception()
        if isinstance(error, aiomqtt.MqttError):
            # The connection is failing: its loss sends this again, on the next one.
            self._on_error(error)
            _log.debug("mqtt.publish_retry", topic=outgoing.topic, error=str(error))
            return
        del self._unacked[outgoing]
        if outgoing.expiry is not None:
            outgoing.expiry.cancel()
        if outgoing.acked.done():
            return
        if error is None:
            outgoing.acked.set_result(None)
        else:
            outgoing.acked.set_exception(error)

    def _expire(self, outgoing: _Outgoing) -> None:
        if outgoing.acked.done():
            return
        cause = self._last_error()
        error = BusError(
            f"publish to {outgoing.topic!r} was not acknowledged within "
            f"{self._timeout_s}s ({cause or 'no connection'})"
        )
        error.__cause__ = cause
        outgoing.acked.set_exception(error)
