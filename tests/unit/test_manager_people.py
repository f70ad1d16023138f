"""The dialogue manager and people: a handoff's two messages, and a person's turns."""

from __future__ import annotations

import dataclasses

from agent import topics
from agent.events import (
    DecisionMade,
    EmotionRead,
    Handoff,
    HandoffRequested,
    ReplyEnded,
)
from tests.support.manager import running, turn, until_ended
from tests.support.stores import ListStore
from tests.support.waiting import eventually


async def test_a_handoff_tells_the_user_a_notice_and_asks_the_help_desk() -> None:
    store = ListStore()
    asking = turn(1, "I want to talk to a real person, my email is jo@example.com")
    async with (
        running(store) as (bus, _),
        bus.subscribe(topics.reply("s1")) as replies,
        bus.subscribe(topics.handoff("s1")) as handoffs,
    ):
        await bus.publish(topics.turn("s1"), asking)
        events = await until_ended(replies, 1)
        requested = (await handoffs.get()).event
    decision = next(e for e in events if isinstance(e, DecisionMade)).decision
    notice = next(e for e in events if isinstance(e, Handoff))
    assert notice.reason == "A member of our team will take over this conversation."
    assert not any(reason in notice.reason for reason in decision.reasons)
    assert isinstance(requested, HandoffRequested)
    assert (requested.trigger, requested.turn_id, requested.user_id) == ("rule", "t1", "u1")
    assert requested.reason.startswith(decision.policy)
    assert requested.text == "I want to talk to a real person, my email is [EMAIL]"
    assert requested.reading is not None


async def test_a_persons_turn_is_read_and_kept_while_the_bot_is_silent() -> None:
    store = ListStore()
    theirs = dataclasses.replace(turn(1, "Are you still there?"), human_agent="dana")
    async with running(store) as (bus, _), bus.subscribe(topics.reply("s1")) as replies:
        await bus.publish(topics.turn("s1"), theirs)
        events = await until_ended(replies, 1)
        await eventually(lambda: bool(store.turns))
    assert [type(e) for e in events] == [EmotionRead, ReplyEnded]
    ended = events[-1]
    assert isinstance(ended, ReplyEnded)
    assert (ended.generator, ended.text, ended.interrupted) == ("human", "", False)
    (kept,) = store.turns
    assert (kept.reply, kept.generator, kept.decision.policy) == ("", "human", "human:dana")
