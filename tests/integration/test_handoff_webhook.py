"""Handoffs posted to a real local webhook receiver, recorded on SQLite and PostgreSQL.

Timeouts and backoffs are tens of milliseconds here; nothing asserts on how long
anything took. The receiver's `on_request` reads the outbox while the notifier
waits for its answer, so each attempt's view of the row is exact.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent import topics
from agent.bus.inprocess import InProcessBus
from agent.errors import StoreError
from agent.events import HandoffRequested, SessionClosed
from agent.handoff import (
    Backoff,
    HandoffForwarder,
    HandoffNotifier,
    WebhookConfig,
    build_document,
    encode_document,
    verify,
)
from agent.values import EmotionReading, Exchange, Strategy
from memory.crypto import TextCipher, new_key
from memory.handoffs import DeliveryRecord, DeliveryStatus, NewDelivery
from memory.sql import SqlHandoffOutbox, open_engine
from memory.sql.models import HandoffDeliveryRow
from tests.support.waiting import eventually
from tests.support.webhook import Received, Reply, WebhookReceiver

pytestmark = pytest.mark.integration

SECRET = b"whsec-integration"
WITHIN = 20.0  # a broken test fails after this long instead of hanging


def config(url: str, **overrides: Any) -> WebhookConfig:
    values: dict[str, Any] = {
        "url": url,
        "secret": SECRET,
        "timeout": 0.3,
        "lease": 5.0,
        "poll_interval": 0.02,
        "attempts": 20,
        "concurrency": 4,
        "backoff": Backoff(base=0.02, cap=0.1, spread=0.0),
    }
    return WebhookConfig(**(values | overrides))


def reading(dominant: str, valence: float) -> EmotionReading:
    return EmotionReading(
        scores={dominant: 0.9, "neutral": 0.1},
        dominant=dominant,
        valence=valence,
        arousal=0.7,
        intensity=0.8,
        model="test",
    )


HISTORY = (
    Exchange(
        text="my order never came, write to ann@example.com",
        reply="I'm sorry. What is the order number?",
        emotion=reading("disappointment", -0.4),
        strategy=Strategy.APOLOGIZE,
    ),
)


async def history(request: HandoffRequested) -> tuple[Exchange, ...]:
    return HISTORY


def request(session_id: str = "s-1", **overrides: Any) -> HandoffRequested:
    values: dict[str, Any] = {
        "session_id": session_id,
        "user_id": "customer-7",
        "tenant": "acme",
        "trigger": "rule",
        "reason": "angry three turns running",
        "turn_id": "t-2",
        "text": "this is ridiculous",
        "reading": reading("anger", -0.8),
        "at": time.time(),
    }
    return HandoffRequested(**(values | overrides))


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Return once `condition()` holds; fail after `WITHIN` seconds."""
    for _ in range(int(WITHIN / 0.01)):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def settled(outbox: SqlHandoffOutbox, delivery_id: str) -> DeliveryRecord:
    """The delivery's record once it is delivered or failed."""

    async def done() -> bool:
        record = await outbox.get(delivery_id)
        return record is not None and record.status is not DeliveryStatus.PENDING

    await until(done)
    record = await outbox.get(delivery_id)
    assert record is not None
    return record


def assert_signed(received: Received) -> None:
    header = received.headers["x-heartline-signature"]
    assert verify(SECRET, header, received.body, now=time.time())


async def test_a_handoff_arrives_signed_with_its_document(sql_engine: AsyncEngine) -> None:
    outbox = SqlHandoffOutbox(sql_engine)
    async with (
        WebhookReceiver() as receiver,
        HandoffNotifier(outbox, history, config(receiver.url)) as notifier,
    ):
        delivery_id = await notifier.submit(request())
        record = await settled(outbox, delivery_id)
    assert record.status is DeliveryStatus.DELIVERED
    assert (record.attempts, record.last_status, record.last_error) == (1, 200, None)
    assert record.delivered_at is not None
    assert (record.tenant, record.session_id, record.user_id, record.trigger) == (
        "acme",
        "s-1",
        "customer-7",
        "rule",
    )
    [received] = receiver.requests
    assert (received.method, received.path) == ("POST", "/hooks/heartline")
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"].startswith("Heartline/")
    assert received.headers["x-heartline-delivery"] == delivery_id
    assert received.headers["x-heartline-attempt"] == "1"
    assert_signed(received)
    assert not verify(b"not the secret", received.headers["x-heartline-signature"],
                      received.body, now=time.time())  # fmt: skip
    document = json.loads(received.body)
    assert (document["id"], document["type"], document["trigger"]) == (
        delivery_id,
        "handoff",
        "rule",
    )
    assert (document["session_id"], document["user_id"], document["turn_id"]) == (
        "s-1",
        "customer-7",
        "t-2",
    )
    assert document["reason"] == "angry three turns running"
    assert document["history_missing"] is False
    assert document["transcript"] == [
        {"role": "user", "text": "my order never came, write to [EMAIL]"},
        {"role": "assistant", "text": "I'm sorry. What is the order number?",
         "strategy": "apologize"},
        {"role": "user", "text": "this is ridiculous"},
    ]  # fmt: skip
    assert [(p["entry"], p["turn_id"], p["dominant"]) for p in document["emotion_trajectory"]] == [
        (0, None, "disappointment"),
        (2, "t-2", "anger"),
    ]


async def test_failures_are_retried_with_backoff_until_delivered(sql_engine: AsyncEngine) -> None:
    outbox = SqlHandoffOutbox(sql_engine)
    seen: list[DeliveryRecord] = []

    async def snapshot(received: Received) -> None:
        record = await outbox.get(received.headers["x-heartline-delivery"])
        assert record is not None
        seen.append(record)

    async def refused() -> bool:
        record = await outbox.get(delivery_id)
        return record is not None and (record.last_error or "").startswith("connection failed")

    async with WebhookReceiver() as receiver:
        receiver.on_request = snapshot
        # A 500; an answer slower than the attempt's timeout; another, after which the
        # port is closed, so the next attempts are refused until it listens again.
        receiver.script(Reply(status=500), Reply(hang=True), Reply(hang=True, then_refuse=True))
        async with HandoffNotifier(outbox, history, config(receiver.url)) as notifier:
            delivery_id = await notifier.submit(request())
            await until(refused)
            await receiver.resume()
            record = await settled(outbox, delivery_id)

    views = [(r.attempts, r.status, r.last_status, (r.last_error or "")) for r in seen]
    assert len(views) == 4
    assert views[0] == (1, DeliveryStatus.PENDING, None, "")
    assert views[1] == (2, DeliveryStatus.PENDING, 500, "HTTP 500 Internal Server Error")
    assert views[2][:3] == (3, DeliveryStatus.PENDING, None)
    assert views[2][3] == "timed out: no response within 0.3 s"
    assert views[3][1:3] == (DeliveryStatus.PENDING, None)
    assert views[3][3].startswith("connection failed: ConnectError")
    assert views[3][0] >= 5  # at least one attempt found the port closed
    assert record.status is DeliveryStatus.DELIVERED
    assert (record.attempts, record.last_status, record.last_error) == (views[3][0], 200, None)
    # One delivery: the same id and the same bytes on every attempt, each signed afresh.
    assert {r.headers["x-heartline-delivery"] for r in receiver.requests} == {delivery_id}
    assert len({r.body for r in receiver.requests}) == 1
    assert [r.headers["x-heartline-attempt"] for r in receiver.requests] == [
        str(view[0]) for view in views
    ]
    for received in receiver.requests:
        assert_signed(received)


async def test_a_refusal_fails_at_once_and_is_recorded(sql_engine: AsyncEngine) -> None:
    outbox = SqlHandoffOutbox(sql_engine)
    async with WebhookReceiver() as receiver:
        receiver.default = Reply(status=400)
        async with HandoffNotifier(outbox, history, config(receiver.url)) as notifier:
            delivery_id = await notifier.submit(request())
            record = await settled(outbox, delivery_id)
    assert record.status is DeliveryStatus.FAILED
    assert (record.attempts, record.last_status) == (1, 400)
    assert record.last_error == "HTTP 400 Bad Request (refused; not retried)"
    assert record.delivered_at is None
    assert len(receiver.requests) == 1


async def test_the_attempts_run_out(sql_engine: AsyncEngine) -> None:
    outbox = SqlHandoffOutbox(sql_engine)
    async with WebhookReceiver() as receiver:
        receiver.default = Reply(status=503)
        async with HandoffNotifier(outbox, history, config(receiver.url, attempts=3)) as notifier:
            delivery_id = await notifier.submit(request())
            record = await settled(outbox, delivery_id)
    assert record.status is DeliveryStatus.FAILED
    assert (record.attempts, record.last_status) == (3, 503)
    assert record.last_error == "HTTP 503 Service Unavailable (gave up after 3 attempts)"
    assert len(receiver.requests) == 3


async def test_a_delivery_left_pending_is_posted_by_the_next_notifier(
    sql_engine: AsyncEngine,
) -> None:
    outbox = SqlHandoffOutbox(sql_engine)

    async def answered() -> bool:
        record = await outbox.get(delivery_id)
        return record is not None and record.last_status == 503

    async with WebhookReceiver() as receiver:
        receiver.default = Reply(status=503)
        async with HandoffNotifier(outbox, history, config(receiver.url)) as first:
            delivery_id = await first.submit(request())
            await until(answered)
        left = await outbox.get(delivery_id)
        assert left is not None
        assert left.status is DeliveryStatus.PENDING
        tried = len(receiver.requests)
        assert left.attempts == tried

        receiver.default = Reply(status=200)
        async with HandoffNotifier(outbox, history, config(receiver.url)):
            record = await settled(outbox, delivery_id)
    assert record.status is DeliveryStatus.DELIVERED
    assert record.attempts == tried + 1
    assert len(receiver.requests) == tried + 1


async def test_a_claim_whose_process_died_is_posted_after_its_lease(
    sql_engine: AsyncEngine,
) -> None:
    outbox = SqlHandoffOutbox(sql_engine)
    handoff = request()
    body = encode_document(build_document(handoff, HISTORY, max_turns=50))
    delivery_id = json.loads(body)["id"]
    recorded = NewDelivery(
        delivery_id=delivery_id,
        tenant=handoff.tenant,
        session_id=handoff.session_id,
        user_id=handoff.user_id,
        trigger=handoff.trigger,
        body=body,
    )
    assert await outbox.record(recorded, now=time.time())
    assert not await outbox.record(recorded, now=time.time())  # the same id: kept once
    # A process claims it and dies before posting or recording anything.
    [dead] = await outbox.claim_due(now=time.time(), limit=10, lease=0.3)
    assert dead.attempt == 1
    async with (
        WebhookReceiver() as receiver,
        HandoffNotifier(outbox, history, config(receiver.url)),
    ):
        record = await settled(outbox, delivery_id)
    assert record.status is DeliveryStatus.DELIVERED
    assert record.attempts == 2
    [received] = receiver.requests
    assert received.headers["x-heartline-attempt"] == "2"
    assert received.body == body.encode()
    # The dead claim, were it to wake, can no longer change the outcome.
    assert not await outbox.retry(dead, at=0.0, status=500, error="late")
    assert not await outbox.fail(dead, status=500, error="late")
    after = await outbox.get(delivery_id)
    assert after is not None
    assert after.status is DeliveryStatus.DELIVERED


async def test_two_notifiers_on_one_database_post_each_delivery_once(
    sql_engine: AsyncEngine, db_url: str
) -> None:
    recording = SqlHandoffOutbox(sql_engine)
    ids = []
    for n in range(30):
        handoff = request(session_id=f"s-{n}")
        body = encode_document(build_document(handoff, (), max_turns=50))
        ids.append(json.loads(body)["id"])
        delivery = NewDelivery(
            delivery_id=ids[-1],
            tenant="acme",
            session_id=handoff.session_id,
            user_id=handoff.user_id,
            trigger="rule",
            body=body,
        )
        await recording.record(delivery, now=time.time())
    other = open_engine(db_url)  # the second process's own engine
    try:

        async def all_delivered() -> bool:
            query = select(func.count()).where(
                HandoffDeliveryRow.status == DeliveryStatus.DELIVERED.value
            )
            async with sql_engine.connect() as conn:
                return (await conn.execute(query)).scalar_one() == len(ids)

        async with (
            WebhookReceiver() as receiver,
            HandoffNotifier(SqlHandoffOutbox(sql_engine), history, config(receiver.url)),
            HandoffNotifier(SqlHandoffOutbox(other), history, config(receiver.url)),
        ):
            await until(all_delivered)
    finally:
        await other.dispose()
    posted = Counter(r.headers["x-heartline-delivery"] for r in receiver.requests)
    assert set(posted) == set(ids)
    assert set(posted.values()) == {1}
    for delivery_id in ids:
        record = await recording.get(delivery_id)
        assert record is not None
        assert record.attempts == 1


async def test_a_request_submitted_twice_is_posted_once(sql_engine: AsyncEngine) -> None:
    outbox = SqlHandoffOutbox(sql_engine)
    handoff = request()
    async with (
        WebhookReceiver() as receiver,
        HandoffNotifier(outbox, history, config(receiver.url)) as notifier,
    ):
        first = await notifier.submit(handoff)
        again = await notifier.submit(handoff)
        record = await settled(outbox, first)
    assert first == again
    assert record.status is DeliveryStatus.DELIVERED
    assert len(receiver.requests) == 1
    async with sql_engine.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(HandoffDeliveryRow))).scalar()
    assert rows == 1


async def test_an_unreadable_history_still_reaches_the_help_desk(sql_engine: AsyncEngine) -> None:
    async def broken(request: HandoffRequested) -> tuple[Exchange, ...]:
        raise StoreError("reading the conversation failed: the database is away")

    outbox = SqlHandoffOutbox(sql_engine)
    async with (
        WebhookReceiver() as receiver,
        HandoffNotifier(outbox, broken, config(receiver.url)) as notifier,
    ):
        record = await settled(outbox, await notifier.submit(request(trigger="crisis")))
    assert record.status is DeliveryStatus.DELIVERED
    document = json.loads(receiver.requests[0].body)
    assert document["history_missing"] is True
    assert document["trigger"] == "crisis"
    assert document["transcript"] == [{"role": "user", "text": "this is ridiculous"}]


async def test_bodies_are_encrypted_at_rest_when_a_key_is_set(sql_engine: AsyncEngine) -> None:
    cipher = TextCipher.from_spec(f"k1:{new_key()}")
    outbox = SqlHandoffOutbox(sql_engine, cipher=cipher)
    async with (
        WebhookReceiver() as receiver,
        HandoffNotifier(outbox, history, config(receiver.url)) as notifier,
    ):
        delivery_id = await notifier.submit(request())
        record = await settled(outbox, delivery_id)
    assert record.status is DeliveryStatus.DELIVERED
    async with sql_engine.connect() as conn:
        stored = (await conn.execute(select(HandoffDeliveryRow.body))).scalar_one()
    assert stored.startswith("enc:v1:k1:")
    assert "ridiculous" not in stored
    assert json.loads(receiver.requests[0].body)["id"] == delivery_id


async def test_a_body_no_key_opens_fails_instead_of_coming_due_for_ever(
    sql_engine: AsyncEngine,
) -> None:
    sealed = SqlHandoffOutbox(sql_engine, cipher=TextCipher.from_spec(f"k1:{new_key()}"))
    delivery = NewDelivery(
        delivery_id="d-sealed",
        tenant="acme",
        session_id="s-1",
        user_id="customer-7",
        trigger="rule",
        body='{"id":"d-sealed"}',
    )
    await sealed.record(delivery, now=time.time())
    keyless = SqlHandoffOutbox(sql_engine)
    assert await keyless.claim_due(now=time.time(), limit=10, lease=5.0) == []
    record = await keyless.get("d-sealed")
    assert record is not None
    assert record.status is DeliveryStatus.FAILED
    assert "HEARTLINE_ENCRYPTION_KEYS" in (record.last_error or "")


async def test_handoffs_on_the_bus_reach_the_webhook(sql_engine: AsyncEngine) -> None:
    outbox = SqlHandoffOutbox(sql_engine)
    handoff = request(session_id="s-bus")
    async with (
        InProcessBus() as bus,
        WebhookReceiver() as receiver,
        HandoffNotifier(outbox, history, config(receiver.url)) as notifier,
        HandoffForwarder(bus, notifier, group="workers"),
    ):
        await bus.publish(topics.handoff("s-bus"), SessionClosed(session_id="s-bus", at=1.0))
        await bus.publish(topics.handoff("s-bus"), handoff)
        await eventually(lambda: bool(receiver.requests), within=WITHIN)
        document = json.loads(receiver.requests[0].body)
        record = await settled(outbox, document["id"])
    assert record.status is DeliveryStatus.DELIVERED
    assert document["session_id"] == "s-bus"
    assert len(receiver.requests) == 1


async def test_leaving_on_an_error_cancels_the_attempt_and_keeps_the_delivery(
    sql_engine: AsyncEngine,
) -> None:
    outbox = SqlHandoffOutbox(sql_engine)
    submitted: list[str] = []

    async def fail_while_posting(receiver: WebhookReceiver) -> None:
        slow = config(receiver.url, timeout=60.0, lease=120.0)
        async with HandoffNotifier(outbox, history, slow) as notifier:
            submitted.append(await notifier.submit(request()))
            await eventually(lambda: bool(receiver.requests), within=WITHIN)
            raise LookupError("the worker stops")

    async with WebhookReceiver() as receiver:
        receiver.default = Reply(hang=True)
        with pytest.raises(LookupError):  # the caller's own error, not a group of it
            await fail_while_posting(receiver)
    record = await outbox.get(submitted[0])
    assert record is not None
    assert record.status is DeliveryStatus.PENDING
    assert record.attempts == 1
