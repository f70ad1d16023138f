"""The dialogue manager: what it reads of each turn (the emotion, the mood) and when."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from agent import topics
from agent.bus import InProcessBus
from agent.dialogue import DialogueManager, Stages
from agent.emotion import LexiconRecognizer
from agent.emotion.conversation import replay_mood
from agent.events import (
    Cancel,
    EmotionRead,
)
from agent.generation import TemplateGenerator
from agent.generation.base import GenerationRequest, ReplyStream
from agent.metrics import Metrics
from agent.values import (
    Decision,
    EmotionReading,
    Trajectory,
    TurnContext,
)
from memory import InMemoryTurnLedger
from policies import RulePolicy
from tests.support.manager import HookedLedger
from tests.support.manager import stages as _stages
from tests.support.manager import turn as _turn
from tests.support.manager import until_ended as _until_ended
from tests.support.stores import ListStore
from tests.support.waiting import eventually


class _CountingRecognizer(LexiconRecognizer):
    """The lexicon, noting every text it reads."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    async def read_batch(self, texts: Sequence[str]) -> list[EmotionReading]:
        self.texts.extend(texts)
        return await super().read_batch(texts)


class _Remembering(TemplateGenerator):
    """The template generator, noting the conversation each request came with."""

    def __init__(self) -> None:
        super().__init__()
        self.conversations: list[list[tuple[str, str]]] = []

    async def open(self, request: GenerationRequest) -> ReplyStream:
        self.conversations.append([(e.text, e.reply) for e in request.conversation])
        return await super().open(request)


async def test_what_a_skipped_turn_said_stays_in_the_conversation() -> None:
    store, generator = ListStore(), _Remembering()
    counting = _CountingRecognizer()
    stages = dataclasses.replace(_stages(store), recognizer=counting, generator=generator)
    async with (
        InProcessBus() as bus,
        DialogueManager(bus, stages, InMemoryTurnLedger(), metrics=Metrics()),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        await bus.publish(
            topics.cancel("s1"), Cancel(session_id="s1", turn_id="t1", reason="client")
        )
        await bus.publish(topics.turn("s1"), _turn(1, "my parcel is late"))
        await bus.publish(topics.turn("s1"), _turn(2, "actually, it is broken"))
        await _until_ended(replies, 2)
    assert counting.texts == ["actually, it is broken"]
    assert generator.conversations == [[("my parcel is late", "")]]


class _Watching:
    """The rule policy, recording every context it is given."""

    name = "watching"

    def __init__(self) -> None:
        self.contexts: list[TurnContext] = []
        self._rules = RulePolicy()

    def decide(self, context: TurnContext) -> Decision | None:
        self.contexts.append(context)
        return self._rules.decide(context)


def _watched(store: ListStore, policy: _Watching) -> Stages:
    return Stages(
        recognizer=LexiconRecognizer(), policy=policy, generator=TemplateGenerator(), store=store
    )


async def test_signals_are_fused_and_the_mood_reaches_the_policy() -> None:
    store, policy = ListStore(), _Watching()
    turns = [
        _turn(1, "thanks, that helps"),
        dataclasses.replace(_turn(2, "Where is my parcel?"), signals={"anger": 0.95}),
        _turn(3, "This is ridiculous, I am furious!"),
    ]
    async with (
        InProcessBus() as bus,
        DialogueManager(bus, _watched(store, policy), InMemoryTurnLedger(), metrics=Metrics()),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        for turn in turns:
            await bus.publish(topics.turn("s1"), turn)
        events = await _until_ended(replies, 3)
    readings = [e.reading for e in events if isinstance(e, EmotionRead)]
    assert [r.model for r in readings] == ["lexicon-v1", "lexicon-v1+signals", "lexicon-v1"]
    assert readings[1].dominant == "anger"
    moods = [c.mood for c in policy.contexts]
    assert [m.turns for m in moods] == [1, 2, 3]
    assert moods[0].dominant == readings[0].dominant
    assert moods[2].trajectory is Trajectory.ESCALATING
    assert moods[2].valence < moods[0].valence


async def test_the_mood_is_rebuilt_when_another_worker_answered_the_turns_before() -> None:
    store, ledger = ListStore(), InMemoryTurnLedger()
    first, second = _Watching(), _Watching()
    async with InProcessBus() as bus:
        for policy, turns in ((first, [1, 2]), (second, [3])):
            manager = DialogueManager(bus, _watched(store, policy), ledger, metrics=Metrics())
            async with manager, bus.subscribe(topics.reply("s1")) as replies:
                for seq in turns:
                    await bus.publish(topics.turn("s1"), _turn(seq, "I am furious!"))
                await _until_ended(replies, len(turns))
    (context,) = second.contexts
    assert context.mood.turns == 3
    assert context.mood == replay_mood(c.emotion for c in [*first.contexts, context])


async def test_the_emotion_is_read_while_the_turn_is_claimed() -> None:
    claimable, recognizer = asyncio.Event(), _CountingRecognizer()
    stages = dataclasses.replace(_stages(ListStore()), recognizer=recognizer)
    async with (
        InProcessBus() as bus,
        DialogueManager(bus, stages, HookedLedger(claimable.wait), metrics=Metrics()),
        bus.subscribe(topics.reply("s1")) as replies,
    ):
        await bus.publish(topics.turn("s1"), _turn(1, "I am furious!"))
        await eventually(lambda: recognizer.texts == ["I am furious!"])
        claimable.set()
        events = await _until_ended(replies, 1)
    [read] = [e for e in events if isinstance(e, EmotionRead)]
    assert read.reading.dominant == "anger"
    assert recognizer.texts == ["I am furious!"]
