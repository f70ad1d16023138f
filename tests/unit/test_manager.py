"""The dialogue manager on the in-process bus: events in, events out."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from contextlib import AsyncExitStack

import pytest

from agent import topics
from agent.bus import InProcessBus
from agent.dialogue import DialogueManager, ManagerSettings, PipelineSettings
from agent.events import (
    Cancel,
    DecisionMade,
    EmotionRead,
    Event,
    Feedback,
    ReplyDelta,
    ReplyEnded,
    ReplyStarted,
    TurnFailed,
    encode,
)
from agent.metrics import Metrics
from agent.values import (
    HistorySummary,
    Strategy,
    TurnContext,
)
from memory import InMemoryTurnLedger
from memory.ledger import ClaimOutcome
from memory.records import TurnRecord
from tests.support.gateway import next_event
from tests.support.manager import running as _running
from tests.support.manager import stages as _stages
from tests.support.manager import turn as _turn
from tests.support.manager import until_ended as _until_ended
from tests.support.stores import ListStore
from tests.support.waiting import eventually


async def test_one_turn_streams_every_stage_in_order() -> None:
    store = ListStore()
    async with _running(store) as (bus, _), bus.subscribe(topics.reply("s1")) as replies:
        await bus.publish(topics.turn("s1"), _turn(1, "This is ridiculous, I am furious!"))
        events = await _until_ended(replies, 1)
    kinds = [type(e) for e in events]
    assert kinds[:4] == [EmotionRead, DecisionMade, ReplyStarted, ReplyDelta]
    deltas = [e for e in events if isinstance(e, ReplyDelta)]
    end = events[-1]
    assert isinstance(end, ReplyEnded)
    assert len(deltas) >= 2
    assert [d.seq for d in deltas] == list(range(len(deltas)))
    assert end.text == "".join(d.text for d in deltas)
    assert not end.interrupted
    assert {"emotion", "policy", "first_token"} <= set(end.stages)
    emotion = events[0]
    assert isinstance(emotion, EmotionRead)
    assert emotion.reading.dominant == "anger"
    await store.flush()
    assert [(t.turn_id, t.reply) for t in store.turns] == [("t1", end.text)]


async def test_turns_of_a_session_run_in_order_once_each() -> None:
    store = ListStore()
    async with _running(store) as (bus, _), bus.subscribe(topics.reply("s1")) as replies:
        for seq in range(1, 6):
            await bus.publish(topics.turn("s1"), _turn(seq))
        await bus.publish(topics.turn("s1"), _turn(3))  # a redelivery
        events = await _until_ended(replies, 5)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await replies.get()
    ended = [e.turn_id for e in events if isinstance(e, ReplyEnded)]
    assert ended == ["t1", "t2", "t3", "t4", "t5"]
    assert [t.seq for t in store.turns] == [1, 2, 3, 4, 5]


async def test_barge_in_interrupts_the_streaming_reply() -> None:
    store = ListStore()
    async with (
        _running(store, token_delay=0.05) as (bus, _),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        await bus.publish(topics.turn("s1"), _turn(1))
        async with asyncio.timeout(5):
            while not isinstance((await replies.get()).event, ReplyDelta):
                pass
        await bus.publish(
            topics.cancel("s1"), Cancel(session_id="s1", turn_id="t1", reason="barge_in")
        )
        await bus.publish(topics.turn("s1"), _turn(2, "thank you!"))
        events = await _until_ended(replies, 2)
    first_end = next(e for e in events if isinstance(e, ReplyEnded))
    assert first_end.turn_id == "t1"
    assert first_end.interrupted
    after = events[events.index(first_end) + 1 :]
    assert not [e for e in after if isinstance(e, ReplyDelta) and e.turn_id == "t1"]
    second_end = events[-1]
    assert isinstance(second_end, ReplyEnded)
    assert second_end.turn_id == "t2"
    assert not second_end.interrupted
    assert store.turns[0].interrupted


@pytest.mark.parametrize("elsewhere", [0, 12_000], ids=["alone", "amid-other-cancels"])
async def test_a_turn_cancelled_before_it_starts_ends_at_once(elsewhere: int) -> None:
    store = ListStore()
    async with (
        _running(store, token_delay=0.02) as (bus, _),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        await bus.publish(topics.turn("s1"), _turn(1))
        await bus.publish(topics.turn("s1"), _turn(2))
        await bus.publish(
            topics.cancel("s1"), Cancel(session_id="s1", turn_id="t2", reason="client")
        )
        # Other sessions' cancels meanwhile, more than a window shared by all would hold.
        for n in range(elsewhere):
            other = f"busy{n}"
            await bus.publish(
                topics.cancel(other), Cancel(session_id=other, turn_id="t1", reason="client")
            )
            if n % 100 == 0:
                await asyncio.sleep(0)  # let the worker keep up with its subscription
        events = await _until_ended(replies, 2)
    ends = [e for e in events if isinstance(e, ReplyEnded)]
    assert [(e.turn_id, e.interrupted) for e in ends] == [("t1", False), ("t2", True)]
    assert (ends[1].text, ends[1].generator) == ("", "skipped")
    # Skipped before any work: no reading, no decision, no reply, no row.
    assert [type(e).__name__ for e in events if e.turn_id == "t2"] == ["ReplyEnded"]
    assert [t.seq for t in store.turns] == [1]


async def test_feedback_is_recorded() -> None:
    store = ListStore()
    async with _running(store) as (bus, _):
        await bus.publish(
            topics.feedback("s1"), Feedback(session_id="s1", user_id="u1", turn_id="t1", score=5)
        )
        async with asyncio.timeout(5):
            await store.changed.wait()
    assert store.feedback[0].score == 5


class _HistoryAskedStore(ListStore):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, str]] = []

    async def history(
        self,
        user_id: str,
        *,
        now: float,
        session_id: str | None = None,
        tenant: str = "default",
    ) -> HistorySummary:
        self.asked.append((tenant, user_id))
        return await super().history(user_id, now=now, session_id=session_id, tenant=tenant)


async def test_the_turns_tenant_reaches_the_store() -> None:
    store = _HistoryAskedStore()
    async with (
        _running(store) as (bus, _),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        await bus.publish(topics.turn("s1"), dataclasses.replace(_turn(1), tenant="acme"))
        await _until_ended(replies, 1)
        await bus.publish(
            topics.feedback("s1"),
            Feedback(session_id="s1", user_id="u1", turn_id="t1", score=5, tenant="acme"),
        )
        await eventually(lambda: len(store.feedback) == 1)
    assert store.asked == [("acme", "u1")]
    assert [t.tenant for t in store.turns] == ["acme"]
    assert store.feedback[0].tenant == "acme"


async def test_two_workers_share_turns_exactly_once_in_order() -> None:
    store = ListStore()
    sessions = [f"s{n}" for n in range(6)]
    async with (
        _running(store, workers=2) as (bus, managers),
        bus.subscribe("hl/v1/reply/+") as replies,
    ):
        for seq in range(1, 5):
            for session in sessions:
                await bus.publish(topics.turn(session), _turn(seq, session=session))
        events = await _until_ended(replies, len(sessions) * 4)
    for session in sessions:
        ended = [e.turn_id for e in events if isinstance(e, ReplyEnded) and e.session_id == session]
        assert ended == ["t1", "t2", "t3", "t4"]
    assert all(m.turns_answered > 0 for m in managers)
    assert sum(m.turns_answered for m in managers) == len(sessions) * 4


async def test_a_turn_left_by_a_dead_worker_is_resumed() -> None:
    store = ListStore()
    ledger = InMemoryTurnLedger()
    orphan = _turn(1)
    await ledger.claim(
        "s1", 1, encode(orphan), worker="dead", now=time.time() - 10, lease=1.0, gap_timeout=1.0
    )
    settings = ManagerSettings(sweep_interval=0.05)
    async with (
        _running(store, ledger=ledger, settings=settings) as (bus, _),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        events = await _until_ended(replies, 1)
    end = events[-1]
    assert isinstance(end, ReplyEnded)
    assert end.turn_id == "t1"


async def test_a_turn_waiting_behind_another_is_held_in_the_ledger() -> None:
    ledger = InMemoryTurnLedger()
    async with (
        _running(ListStore(), ledger=ledger, token_delay=0.05) as (bus, _),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        await bus.publish(topics.turn("s1"), _turn(1))
        await bus.publish(topics.turn("s1"), _turn(2))  # waits here while turn 1 streams
        while not isinstance((await next_event(replies))[1], ReplyDelta):
            pass
        # Another worker's copy of turn 2 finds it held: were this worker to die,
        # turn 2 would be handed over with turn 1, not left unclaimed.
        copy = await ledger.claim(
            "s1", 2, encode(_turn(2)), worker="other", now=time.time(), lease=30, gap_timeout=1
        )
        assert copy is ClaimOutcome.BUSY
        await ledger.release("w0")
        assert len(await ledger.reclaimable(now=time.time(), limit=10)) == 2
        await _until_ended(replies, 2)


class _SlowHistoryStore(ListStore):
    async def history(
        self,
        user_id: str,
        *,
        now: float,
        session_id: str | None = None,
        tenant: str = "default",
    ) -> HistorySummary:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


async def test_a_turn_is_answered_without_history_when_the_store_is_slow() -> None:
    store = _SlowHistoryStore()
    settings = ManagerSettings(pipeline=PipelineSettings(history_timeout=0.05))
    async with (
        _running(store, settings=settings) as (bus, _),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        await bus.publish(topics.turn("s1"), _turn(1))
        events = await _until_ended(replies, 1)
    assert isinstance(events[-1], ReplyEnded)
    assert not events[-1].interrupted


async def test_a_reply_longer_than_the_lease_is_not_answered_twice() -> None:
    store = ListStore()
    settings = ManagerSettings(lease=0.3, sweep_interval=0.1)
    async with (
        _running(store, workers=2, token_delay=0.05, settings=settings) as (bus, _),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        await bus.publish(topics.turn("s1"), _turn(1))
        await bus.publish(topics.turn("s1"), _turn(1))  # a redelivered copy
        events = await _until_ended(replies, 1)
        # The copy's worker finds the turn answered and repeats only how it ended.
        repeated = await _until_ended(replies, 1)
    assert sum(isinstance(e, ReplyStarted) for e in events) == 1
    assert repeated == [events[-1]]
    assert len(store.turns) == 1


async def test_a_taken_over_turn_runs_before_the_later_turn_waiting_for_it() -> None:
    store = ListStore()
    ledger = InMemoryTurnLedger()
    # A worker died holding turn 1 (its lease runs out in a moment); turn 2 arrives here.
    await ledger.claim(
        "s1", 1, encode(_turn(1)), worker="dead", now=time.time(), lease=0.3, gap_timeout=1.0
    )
    settings = ManagerSettings(sweep_interval=0.1, gap_timeout=1.0)
    async with (
        _running(store, ledger=ledger, settings=settings) as (bus, _),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        await bus.publish(topics.turn("s1"), _turn(2))
        events = await _until_ended(replies, 2)
    ended = [e.turn_id for e in events if isinstance(e, ReplyEnded)]
    assert ended == ["t1", "t2"]


class RecordingLearner:
    """A `Learner` that keeps what it was told."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[tuple[float, ...], str, int | None, float, float | None]] = []

    def features(self, context: TurnContext) -> tuple[float, ...]:
        return (context.emotion.valence, float(len(context.conversation)))

    def learn(
        self,
        features: tuple[float, ...],
        strategy: Strategy,
        *,
        feedback: int | None,
        valence_before: float,
        valence_after: float | None,
    ) -> None:
        self.outcomes.append((features, strategy.value, feedback, valence_before, valence_after))


async def test_the_learner_hears_the_next_turns_valence_and_the_users_feedback() -> None:
    store, learner = ListStore(), RecordingLearner()
    stages = dataclasses.replace(_stages(store), learner=learner)
    async with AsyncExitStack() as stack:
        bus = await stack.enter_async_context(InProcessBus())
        await stack.enter_async_context(
            DialogueManager(bus, stages, InMemoryTurnLedger(), metrics=Metrics())
        )
        async with bus.subscribe(topics.reply("s1")) as replies:
            await bus.publish(topics.turn("s1"), _turn(1, "This is ridiculous, I am furious!"))
            await bus.publish(topics.turn("s1"), _turn(2, "Thank you, that is wonderful!"))
            await _until_ended(replies, 2)
        feedback = Feedback(session_id="s1", user_id="u1", turn_id="t2", score=5)
        await bus.publish(topics.feedback("s1"), feedback)
        await eventually(lambda: len(learner.outcomes) == 2)
    (first, angry, _, before, after), (second, happy, score, _, none) = learner.outcomes
    assert (angry, happy) == ("de-escalate", "celebrate")
    assert first == (before, 0.0)  # the first turn's features, credited at the second
    assert after is not None
    assert before < 0 < after
    assert second[1] == 1.0  # the second turn's features, credited by the feedback
    assert (score, none) == (5, None)
    await store.flush()
    assert [t.features for t in store.turns] == [first, second]


class _CommitOnCue(ListStore):
    """Commits a turn only when told to."""

    def __init__(self) -> None:
        super().__init__()
        self.commit = asyncio.Event()
        self.durable: list[bool] = []

    async def record_turn(self, record: TurnRecord, *, durable: bool = False) -> None:
        self.durable.append(durable)
        await self.commit.wait()
        await super().record_turn(record, durable=durable)


async def test_a_reply_ends_only_once_its_turn_is_committed() -> None:
    store = _CommitOnCue()
    async with (
        _running(store) as (bus, _),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        await bus.publish(topics.turn("s1"), _turn(1))
        await eventually(lambda: bool(store.durable))
        marker = TurnFailed(session_id="s1", turn_id="marker", code="test", message="marker")
        await bus.publish(topics.reply("s1"), marker)
        before: list[Event] = []
        while (event := (await replies.get()).event) != marker:
            before.append(event)
        store.commit.set()
        after = await _until_ended(replies, 1)
    assert any(isinstance(e, ReplyDelta) for e in before)  # the reply streamed meanwhile
    assert not any(isinstance(e, ReplyEnded) for e in before)
    assert isinstance(after[-1], ReplyEnded)
    assert store.durable == [True]
