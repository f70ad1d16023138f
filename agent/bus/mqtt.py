"""The distributed event bus: events as JSON over an MQTT v5 broker (aiomqtt).

Semantics match `InProcessBus`: `+`/`#` filters, one delivery per group, a
bounded queue per subscription. What the network adds, and how it is handled:

- Delivery: QoS 1 both ways, so at least once. `publish_nowait` puts an event
  on the wire at once, behind every event published before it, and hands back
  a future that the broker's PUBACK resolves; `publish` awaits that future.
  So a worker can send a turn's events one after another without a round trip
  between them, and they still leave in call order. What a dropped connection
  caught unacknowledged is sent again, in the same order, on the next
  connection (a consumer may see it twice); a future not resolved within the
  publish timeout raises `BusError`. Nothing is dropped silently.
- Groups: `group` becomes an MQTT v5 shared subscription `$share/<group>/<filter>`,
  so the broker splits the matching events over every process in the group.
- Routing: one broker subscription per (filter, group), tagged with an MQTT v5
  subscription identifier. The broker names the subscriptions a message came
  for, so overlapping filters and groups on one client each get exactly their
  copy; local subscribers of one (filter, group) share it round robin.
- Sessions: the first connection starts clean, reconnects resume the session
  (`clean_start=False` plus a session expiry interval), so the broker queues
  QoS 1 messages for our subscriptions through a short outage. The client id
  must therefore be unique per process: two processes with one id take the
  session from each other in a loop. The default id is the prefix plus a
  random suffix chosen once per bus; a fixed `client_id` is for deployments
  that guarantee one process per id. The cost: Mosquitto goes on handing a
  disconnected member its share of a group's messages until the session
  expires, so the expiry is short (30 s by default) and a clean exit
  unsubscribes first. Members of a shared group that must not hold messages
  while away (workers) set `session_expiry_s=0`.
- Reconnects: a supervisor task reconnects with capped exponential backoff and
  jitter, then subscribes every live route again.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.bus.base import (
    DEFAULT_MAX_QUEUED,
    Delivery,
    Subscription,
    offer_to_group,
    topic_matches,
)
from agent.bus.mqtt_outgoing import OutgoingEvents
from agent.bus.mqtt_settings import MqttSettings
from agent.errors import BusClosedError, BusError, EventDecodeError
from agent.events import Event, decode, encode

__all__ = ["MqttBus", "MqttSettings"]

_log = structlog.get_logger(__name__)

_T = TypeVar("_T")
_MAX_SUBSCRIPTION_ID = 268_435_455  # the largest MQTT v5 subscription identifier
_PENDING_CALLS_WARNING = 1_000


@dataclass(slots=True, eq=False)
class _Route:
    """One broker subscription and the local subscriptions it feeds."""

    topic_filter: str
    group: str | None
    ident: int
    members: list[Subscription] = field(default_factory=list)
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    turn: int = 0

    @property
    def broker_filter(self) -> str:
        if self.group is None:
            return self.topic_filter
        return f"$share/{self.group}/{self.topic_filter}"

    def deliver(self, delivery: Delivery) -> None:
        if not self.members:
            return
        if self.group is None:
            for member in self.members:
                member.offer(delivery)
            return
        # The broker sent one copy for the whole group; keep it to one member here too.
        self.turn += 1
        offer_to_group(self.members, delivery, self.turn)


@dataclass(slots=True, eq=False)
class _Connection:
    client: aiomqtt.Client
    lost: asyncio.Future[None]


class MqttBus:
    """An `EventBus` over an MQTT v5 broker.

    Use it as an async context manager: entering connects (waiting up to
    `connect_timeout_s` for the broker, then raising `BusError`), leaving ends
    every subscription and disconnects. Reusable, not reentrant.
    """

    def __init__(self, settings: MqttSettings | None = None) -> None:
        self._settings = settings or MqttSettings()
        self._tls = self._settings.tls_context()
        self._client_id = self._settings.client_id or (
            f"{self._settings.client_id_prefix}-{uuid.uuid4().hex[:16]}"
        )
        self._routes: dict[tuple[str, str | None], _Route] = {}
        self._by_ident: dict[int, _Route] = {}
        self._idents = itertools.count(1)
        self._conn: _Connection | None = None
        self._connected = asyncio.Event()
        self._connected_since: float | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._running = False
        self._last_error: BaseException | None = None
        self._outgoing = OutgoingEvents(
            timeout_s=self._settings.publish_timeout_s,
            last_error=lambda: self._last_error,
            on_error=self._note_error,
        )

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def connected(self) -> bool:
        """Whether a broker connection is up and subscribed now (for health checks)."""
        return self._connected.is_set()

    @property
    def connected_since(self) -> float | None:
        """Since when (`time.monotonic()`) the current broker connection has been up and
        subscribed; None while there is none. What was published before it may not have
        been heard: a listener judges silence only from here on."""
        return self._connected_since

    async def __aenter__(self) -> MqttBus:
        if self._tasks is not None:
            raise BusError("an MqttBus is reusable but not reentrant")
        self._last_error = None
        tasks = asyncio.TaskGroup()
        await tasks.__aenter__()
        self._tasks = tasks
        self._running = True
        self._supervisor = tasks.create_task(self._supervise(), name="mqtt-bus-supervisor")
        try:
            async with asyncio.timeout(self._settings.connect_timeout_s):
                await self._connected.wait()
        except BaseException as exc:
            await self._shut_down(None, None, None)
            if isinstance(exc, TimeoutError):
                where = f"{self._settings.host}:{self._settings.port}"
                raise BusError(
                    f"cannot connect to the MQTT broker at {where} within "
                    f"{self._settings.connect_timeout_s}s ({self._last_error}); "
                    "check that it runs and that host, port and credentials are right"
                ) from (self._last_error or exc)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shut_down(exc_type, exc, tb)

    async def publish(self, topic: str, event: Event) -> None:
        """Send `event` and wait for the broker's acknowledgement.

        Waits through a reconnect for up to `publish_timeout_s`, then raises
        `BusError`. Not safe to cancel once sent: the event may or may not
        have reached the broker.
        """
        await self.publish_nowait(topic, event)

    def publish_nowait(self, topic: str, event: Event) -> asyncio.Future[None]:
        """Put `event` on the wire now, behind everything this bus published before it.

        The future resolves on the broker's acknowledgement; it raises `BusError`
        when none came within `publish_timeout_s` (through reconnects), and
        `BusClosedError` when the bus closed first. Cancelling it before the
        event was sent withdraws the event.
        """
        self._check_running()
        _check_topic(topic)
        return self._outgoing.put(topic, encode(event))

    @asynccontextmanager
    async def subscribe(
        self,
        topic_filter: str,
        *,
        group: str | None = None,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> AsyncIterator[Subscription]:
        """Subscribe for the `async with` block; entering waits for the broker's SUBACK.

        Raises `BusError` if the broker refuses or does not answer within
        `subscribe_timeout_s`.
        """
        self._check_running()
        _check_filter(topic_filter, group)
        subscription = Subscription(topic_filter, group, max_queued)
        route, created = self._attach(subscription)
        try:
            try:
                async with asyncio.timeout(self._settings.subscribe_timeout_s):
                    if created and self._conn is not None:
                        try:
                            await self._subscribe_route(self._conn, route)
                        except aiomqtt.MqttError as exc:
                            # The supervisor subscribes every route on the next connection.
                            self._last_error = exc
                    await route.acked.wait()
            except TimeoutError as exc:
                raise BusError(
                    f"subscription to {route.broker_filter!r} was not acknowledged within "
                    f"{self._settings.subscribe_timeout_s}s ({self._last_error or 'no connection'})"
                ) from (self._last_error or exc)
            yield subscription
        finally:
            subscription.close()
            await self._detach(subscription, route)

    # Connection

    async def _supervise(self) -> None:
        """Connect, route messages until the connection drops, back off, repeat."""
        attempt = 0
        clean_start = True
        while True:
            client = self._new_client(clean_start=clean_start)
            conn: _Connection | None = None
            try:
                async with client:
                    attempt, clean_start = 0, False
                    conn = _Connection(client, asyncio.get_running_loop().create_future())
                    # Share the connection first, then snapshot the routes: a route
                    # made after the snapshot subscribes itself on this connection.
                    self._conn = conn
                    for route in list(self._routes.values()):
                        try:
                            await self._subscribe_route(conn, route)
                        except BusError as exc:
                            _log.error("mqtt.subscribe_refused", error=str(exc))
                    # What waited for a connection goes first, in the order published.
                    # Publishers wait for this too, so what this bus publishes after a
                    # reconnect reaches its own subscribers.
                    self._outgoing.connected(
                        functools.partial(client.publish, qos=self._settings.qos, timeout=math.inf)
                    )
                    self._connected_since = time.monotonic()
                    self._connected.set()
                    self._last_error = None
                    _log.info("mqtt.connected", client_id=self._client_id)
                    await self._dispatch(client)
            except aiomqtt.MqttError as exc:
                self._last_error = exc
                _log.warning("mqtt.connection_lost", client_id=self._client_id, error=str(exc))
            finally:
                self._connected.clear()
                self._connected_since = None
                if conn is not None:
                    self._conn = None
                    if not conn.lost.done():
                        conn.lost.set_result(None)
                    self._outgoing.disconnected()
            delay = self._settings.reconnect_delay(attempt, jitter=random.uniform(0.5, 1.0))
            attempt += 1
            _log.info("mqtt.reconnecting", client_id=self._client_id, delay_s=round(delay, 3))
            await asyncio.sleep(delay)

    def _new_client(self, *, clean_start: bool) -> aiomqtt.Client:
        settings = self._settings
        properties = _properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = settings.session_expiry_s
        nodelay = 1 if settings.tcp_nodelay else 0
        client = aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password,
            identifier=self._client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=clean_start,
            properties=properties,
            timeout=settings.connect_timeout_s,
            keepalive=settings.keepalive_s,
            max_inflight_messages=settings.max_inflight,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, nodelay)],
            tls_context=self._tls,
        )
        # aiomqtt warns from 10 concurrent calls on; a busy gateway has more in flight.
        client.pending_calls_threshold = _PENDING_CALLS_WARNING
        return client

    async def _until_lost(self, conn: _Connection, operation: Awaitable[_T]) -> _T:
        """Await `operation`, but give up with `MqttError` if the connection drops first.

        aiomqtt waits for an acknowledgement on a dead connection until its own
        timeout; this lets the caller retry on the next connection at once.
        """
        task = asyncio.ensure_future(operation)
        waiters: set[asyncio.Future[Any]] = {task, conn.lost}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
        if task.cancelled():
            raise aiomqtt.MqttError("the connection dropped before the broker answered")
        return task.result()

    # Publishing and subscribing

    def _note_error(self, error: BaseException) -> None:
        self._last_error = error

    async def _subscribe_route(self, conn: _Connection, route: _Route) -> None:
        """Send SUBSCRIBE for `route` and wait for its SUBACK.

        A dropped connection raises `MqttError` (the next connection subscribes
        again); a refusal (not authorised, no shared subscriptions) raises `BusError`.
        """
        properties = _properties(PacketTypes.SUBSCRIBE)
        properties.SubscriptionIdentifier = route.ident
        codes = await self._until_lost(
            conn,
            conn.client.subscribe(
                route.broker_filter,
                qos=self._settings.qos,
                properties=properties,
                timeout=math.inf,
            ),
        )
        refused = [c for c in codes if isinstance(c, ReasonCode) and c.is_failure]
        if refused:
            raise BusError(f"the broker refused {route.broker_filter!r}: {refused[0]}")
        route.acked.set()

    def _attach(self, subscription: Subscription) -> tuple[_Route, bool]:
        key = (subscription.topic_filter, subscription.group)
        route = self._routes.get(key)
        created = route is None
        if route is None:
            ident = next(self._idents)
            if ident > _MAX_SUBSCRIPTION_ID:
                raise BusError("this bus ran out of MQTT subscription identifiers; restart it")
            route = _Route(subscription.topic_filter, subscription.group, ident)
            self._routes[key] = route
            self._by_ident[ident] = route
        route.members.append(subscription)
        return route, created

    async def _detach(self, subscription: Subscription, route: _Route) -> None:
        if subscription in route.members:
            route.members.remove(subscription)
        if route.members or self._routes.get((route.topic_filter, route.group)) is not route:
            return
        del self._routes[(route.topic_filter, route.group)]
        del self._by_ident[route.ident]
        await self._unsubscribe(route.broker_filter)

    async def _unsubscribe(self, broker_filter: str) -> None:
        """Best effort: a dropped connection is fine, the next session lacks the route."""
        conn = self._conn
        if conn is None:
            return
        try:
            async with asyncio.timeout(self._settings.subscribe_timeout_s):
                await self._until_lost(
                    conn, conn.client.unsubscribe(broker_filter, timeout=math.inf)
                )
        except (aiomqtt.MqttError, TimeoutError) as exc:
            _log.warning("mqtt.unsubscribe_failed", filter=broker_filter, error=str(exc))

    # Routing

    async def _dispatch(self, client: aiomqtt.Client) -> None:
        """Route every incoming message; returns only by raising `MqttError`."""
        async for message in client.messages:
            self._route(message)

    def _route(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        routes = self._routes_for(topic, message.properties)
        if not routes:
            _log.debug("mqtt.unrouted", topic=topic)
            return
        payload = message.payload
        try:
            if not isinstance(payload, bytes | str):
                raise EventDecodeError(f"payload of type {type(payload).__name__}")
            event = decode(payload)
        except EventDecodeError as exc:
            _log.warning("mqtt.invalid_payload", topic=topic, error=str(exc))
            return
        delivery = Delivery(topic, event)
        for route in routes:
            route.deliver(delivery)

    def _routes_for(self, topic: str, properties: Properties | None) -> list[_Route]:
        idents: list[int] = getattr(properties, "SubscriptionIdentifier", None) or []
        if idents:
            found = (self._by_ident.get(ident) for ident in idents)
            return [r for r in found if r is not None and topic_matches(r.topic_filter, topic)]
        # A broker without subscription identifiers: fall back to matching filters.
        return [r for r in self._routes.values() if topic_matches(r.topic_filter, topic)]

    # Shutdown

    def _check_running(self) -> None:
        if not self._running:
            raise BusClosedError("the MQTT bus is not running; use it inside `async with`")

    async def _shut_down(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._running = False
        routes = list(self._routes.values())
        self._routes.clear()
        self._by_ident.clear()
        for route in routes:
            for member in route.members:
                member.close()
        # Leave no subscriptions in the session: its queued messages would wait
        # for a client id that never comes back.
        for route in routes:
            await self._unsubscribe(route.broker_filter)
        tasks, supervisor = self._tasks, self._supervisor
        self._tasks = self._supervisor = None
        if supervisor is not None:
            supervisor.cancel()
        if tasks is not None:
            await tasks.__aexit__(exc_type, exc, tb)
        self._outgoing.close()
        _log.info("mqtt.closed", client_id=self._client_id)


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]


def _check_topic(topic: str) -> None:
    if not topic or "+" in topic or "#" in topic:
        raise ValueError(f"cannot publish to {topic!r}: a topic is non-empty, without + or #")


def _check_filter(topic_filter: str, group: str | None) -> None:
    levels = topic_filter.split("/")
    valid = bool(topic_filter) and not topic_filter.startswith("$share/")
    for index, level in enumerate(levels):
        if ("+" in level and level != "+") or ("#" in level and level != "#"):
            valid = False
        if level == "#" and index != len(levels) - 1:
            valid = False
    if not valid:
        raise ValueError(
            f"invalid topic filter {topic_filter!r}: + and # take a whole level, # only the "
            "last; pass group= instead of a $share/ prefix"
        )
    if group is not None and (not group or any(c in group for c in "/+#")):
        raise ValueError(f"invalid group {group!r}: non-empty, without /, + or #")
