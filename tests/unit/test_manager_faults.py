"""When something goes wrong: one turn fails or ends short, and the worker goes on."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncGenerator, Sequence

import pytest

from agent import topics
from agent.bus import InProcessBus
from agent.dialogue import DialogueManager, ManagerSettings, Stages
from agent.emotion import LexiconRecognizer
from agent.errors import StoreError
from agent.events import (
    MAX_TEXT_CHARS,
    Cancel,
    EmotionRead,
    Event,
    ReplyDelta,
    ReplyEnded,
    SessionClosed,
    TurnFailed,
    WorkerBeat,
    encode,
)
from agent.generation.base import GenerationRequest, ReplyStream
from agent.metrics import Metrics
from agent.values import EmotionReading, TurnContext
from memory import InMemoryTurnLedger
from memory.ledger import ClaimOutcome
from tests.support.manager import HookedLedger
from tests.support.manager import running as _running
from tests.support.manager import stages as _stages
from tests.support.manager import turn as _turn
from tests.support.manager import until_ended as _until_ended
from tests.support.stores import ListStore
from tests.support.waiting import eventually


async def _answer_two_turns(stages: Stages) -> list[Event]:
    """Turns 1 and 2 of session s1 through one worker with `stages`: every reply event."""
    async with (
        InProcessBus() as bus,
        DialogueManager(bus, stages, InMemoryTurnLedger(), metrics=Metrics()),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        await bus.publish(topics.turn("s1"), _turn(1))
        await bus.publish(topics.turn("s1"), _turn(2))
        return await _until_ended(replies, 2)


async def test_a_worker_that_falls_behind_a_subscription_subscribes_again_and_goes_on() -> None:
    store = ListStore()
    async with (
        _running(store) as (bus, _),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        for n in range(12_000):  # without letting the worker read: its queue overflows
            other = f"busy{n}"
            await bus.publish(
                topics.cancel(other), Cancel(session_id=other, turn_id="t1", reason="client")
            )
        await asyncio.sleep(0.1)
        await bus.publish(topics.turn("s1"), _turn(1))
        await bus.publish(
            topics.cancel("s1"), Cancel(session_id="s1", turn_id="t2", reason="client")
        )
        await bus.publish(topics.turn("s1"), _turn(2))
        events = await _until_ended(replies, 2)
    ends = [e for e in events if isinstance(e, ReplyEnded)]
    assert [(e.turn_id, e.interrupted) for e in ends] == [("t1", False), ("t2", True)]


class _BrokenRecognizer:
    name = "broken"

    def __init__(self) -> None:
        self.calls = 0

    async def read_batch(self, texts: Sequence[str]) -> list[EmotionReading]:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("model crashed")
        return await LexiconRecognizer().read_batch(texts)


async def test_a_failing_stage_reports_a_stable_code_and_the_worker_goes_on() -> None:
    stages = dataclasses.replace(_stages(ListStore()), recognizer=_BrokenRecognizer())
    events = await _answer_two_turns(stages)
    failed = events[0]
    assert isinstance(failed, TurnFailed)
    assert (failed.turn_id, failed.code) == ("t1", "emotion_failed")
    assert "crashed" not in failed.message
    assert isinstance(events[-1], ReplyEnded)


class _EndlessGenerator:
    """An LLM that never stops talking; knows whether its stream was closed."""

    name = "endless"

    def __init__(self) -> None:
        self.closed = False

    async def open(self, request: GenerationRequest) -> ReplyStream:
        return ReplyStream(answered_by=self.name, pieces=self._pieces())

    async def _pieces(self) -> AsyncGenerator[str, None]:
        try:
            while True:
                yield "and so on, "
                await asyncio.sleep(0)
        finally:
            self.closed = True


async def test_a_reply_that_runs_on_is_cut_where_an_event_ends_and_the_worker_goes_on() -> None:
    generator = _EndlessGenerator()
    events = await _answer_two_turns(dataclasses.replace(_stages(ListStore()), generator=generator))
    ends = [e for e in events if isinstance(e, ReplyEnded)]
    assert [e.turn_id for e in ends] == ["t1", "t2"]
    first = ends[0]
    assert len(first.text) == MAX_TEXT_CHARS
    deltas = [e for e in events if isinstance(e, ReplyDelta) and e.turn_id == "t1"]
    assert "".join(d.text for d in deltas) == first.text
    assert not first.interrupted
    assert generator.closed


class _FlowWithABug:
    """A conversation flow that fails on its first turn only."""

    def __init__(self) -> None:
        self.calls = 0

    def advance(self, state: str | None, context: TurnContext) -> str:
        self.calls += 1
        if self.calls == 1:
            raise KeyError("a bug")
        return "start"


async def test_an_unexpected_error_fails_its_turn_and_the_worker_goes_on() -> None:
    stages = dataclasses.replace(_stages(ListStore()), flow=_FlowWithABug())
    events = await _answer_two_turns(stages)
    failed = [e for e in events if isinstance(e, TurnFailed)]
    assert [(e.turn_id, e.code) for e in failed] == [("t1", "internal")]
    assert "bug" not in failed[0].message
    assert isinstance(events[-1], ReplyEnded)
    assert events[-1].turn_id == "t2"


class _RecordingLedger(InMemoryTurnLedger):
    """The in-memory ledger, noting the sessions it was told to forget and when."""

    def __init__(self, replies: list[Event]) -> None:
        super().__init__()
        self._replies = replies
        self.forgotten: list[tuple[str, int]] = []  # (session, replies seen by then)

    async def forget_session(self, session_id: str) -> None:
        self.forgotten.append((session_id, len(self._replies)))
        await super().forget_session(session_id)


async def test_a_closed_session_is_forgotten_once_its_turns_are_done() -> None:
    store = ListStore()
    seen: list[Event] = []
    ledger = _RecordingLedger(seen)
    async with (
        _running(store, ledger=ledger, token_delay=0.01) as (bus, _),
        bus.subscribe(topics.reply("s1")) as replies,
        bus.subscribe(topics.reply("s2")) as others,
    ):
        await bus.publish(topics.turn("s1"), _turn(1))
        await bus.publish(topics.turn("s2"), _turn(1, session="s2"))
        assert isinstance((await replies.get()).event, EmotionRead)  # s1's turn is running
        await bus.publish(topics.watch("s1"), SessionClosed(session_id="s1", at=0.0))
        seen.extend(await _until_ended(replies, 1))
        await _until_ended(others, 1)
        await eventually(lambda: ledger.forgotten != [])
    assert ledger.forgotten == [("s1", len(seen))]  # after its reply ended, not before
    end = seen[-1]
    assert isinstance(end, ReplyEnded)
    assert not end.interrupted


class _Outage:
    """The ledger's first claim fails as a database outage would."""

    def __init__(self) -> None:
        self.failures = 1

    async def __call__(self) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreError("database unavailable")


async def test_a_database_failure_abandons_one_turn_and_the_worker_carries_on() -> None:
    store = ListStore()
    outage = _Outage()
    async with (
        _running(store, ledger=HookedLedger(outage)) as (bus, managers),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        await bus.publish(topics.turn("s1"), _turn(1))
        await eventually(lambda: outage.failures == 0 and not managers[0]._lanes)
        await bus.publish(topics.turn("s1"), _turn(1))  # the gateway publishes it again
        events = await _until_ended(replies, 1)
        assert managers[0].ready
    assert isinstance(events[-1], ReplyEnded)
    assert [t.turn_id for t in store.turns] == ["t1"]


@pytest.mark.parametrize("heard", [True, False], ids=["died-meanwhile", "died-before"])
async def test_a_silent_workers_turn_is_taken_over_without_waiting_for_its_lease(
    heard: bool,
) -> None:
    ledger = InMemoryTurnLedger()
    # Neither the lease nor the periodic sweep could bring the turn back within the test.
    settings = ManagerSettings(lease=600.0, takeover_after=0.3, sweep_interval=600.0)
    async with (
        _running(ListStore(), ledger=ledger, settings=settings) as (bus, _),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        # A worker claimed turn 1 and died: its beats stopped, maybe before this one came.
        if heard:
            beat = WorkerBeat(worker_id="ghost", ready=True, at=0.0)
            await bus.publish(topics.worker("ghost"), beat)
        claimed = await ledger.claim(
            "s1", 1, encode(_turn(1)), worker="ghost", now=time.time(), lease=600.0, gap_timeout=1
        )
        assert claimed is ClaimOutcome.CLAIMED
        events = await _until_ended(replies, 1)
    ends = [e for e in events if isinstance(e, ReplyEnded)]
    assert [(e.turn_id, e.interrupted) for e in ends] == [("t1", False)]


class _StallingGenerator:
    """An LLM that says a few words and then nothing, for as long as it is let run."""

    name = "stalling"

    async def open(self, request: GenerationRequest) -> ReplyStream:
        return ReplyStream(answered_by=self.name, pieces=self._pieces())

    async def _pieces(self) -> AsyncGenerator[str, None]:
        yield "Let me check"
        await asyncio.Event().wait()
        yield "never"


async def test_a_worker_whose_turn_was_taken_over_stops_it_without_a_word() -> None:
    ledger, metrics = InMemoryTurnLedger(), Metrics()
    # Renewals every 0.2 s (a third of the lease); "other" beats nowhere, and must not
    # be counted gone in its turn within the test.
    settings = ManagerSettings(lease=0.6, takeover_after=60.0)
    stages = dataclasses.replace(_stages(ListStore()), generator=_StallingGenerator())

    def taken_over() -> bool:
        counted = {"outcome": "taken_over"}
        return metrics.registry.get_sample_value("heartline_turns_total", counted) == 1

    async with (
        InProcessBus() as bus,
        DialogueManager(bus, stages, ledger, metrics=metrics, settings=settings) as worker,
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        await bus.publish(topics.turn("s1"), _turn(1))
        async with asyncio.timeout(5):
            while not isinstance((await replies.get()).event, ReplyDelta):
                pass
        # The others counted this worker gone (its beats held up) and one took the turn.
        assert await ledger.release(worker.worker_id) == 1
        taken = await ledger.claim(
            "s1", 1, b"", worker="other", now=time.time(), lease=600.0, gap_timeout=1
        )
        assert taken is ClaimOutcome.CLAIMED
        await eventually(taken_over)
        # Whatever the worker published about the turn came before this marker.
        marker = TurnFailed(session_id="s1", turn_id="marker", code="test", message="marker")
        await bus.publish(topics.reply("s1"), marker)
        late: list[Event] = []
        while (event := (await replies.get()).event) != marker:
            late.append(event)
    assert not [e for e in late if isinstance(e, ReplyEnded | TurnFailed)]
    assert worker.turns_answered == 0


async def test_a_turn_published_again_after_it_ended_gets_its_ending_again() -> None:
    async with (
        _running(ListStore()) as (bus, _),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        await bus.publish(topics.turn("s1"), _turn(1))
        first = await _until_ended(replies, 1)
        # Its gateway was cut off from the bus when the end went out, and asks again.
        await bus.publish(topics.turn("s1"), _turn(1))
        again = await _until_ended(replies, 1)
    assert again == [first[-1]]
