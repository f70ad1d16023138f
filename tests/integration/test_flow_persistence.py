"""A conversation flow survives a worker restart: its state is stored with each turn."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent import topics
from agent.bus import InProcessBus
from agent.dialogue import DialogueManager, Stages
from agent.emotion import LexiconRecognizer
from agent.events import ReplyEnded, UserTurn
from agent.generation import TemplateGenerator
from agent.metrics import Metrics
from memory.sql import SqlConversationStore, SqlTurnLedger
from memory.sql.models import TurnRow
from policies.flows import load_flow
from policies.stack import policy_stack

pytestmark = pytest.mark.integration


async def _worker_answers(engine: AsyncEngine, seq: int, text: str) -> None:
    """A fresh worker (nothing cached) answers one turn of session s1."""
    flow = load_flow()
    async with SqlConversationStore(engine) as store, InProcessBus() as bus:
        stages = Stages(
            recognizer=LexiconRecognizer(),
            policy=policy_stack(flow=flow),
            generator=TemplateGenerator(),
            store=store,
            flow=flow,
        )
        async with (
            DialogueManager(bus, stages, SqlTurnLedger(engine), metrics=Metrics()),
            bus.subscribe(topics.reply("s1")) as replies,
        ):
            turn = UserTurn(
                session_id="s1", user_id="u1", turn_id=f"t{seq}", seq=seq, text=text, sent_at=0.0
            )
            await bus.publish(topics.turn("s1"), turn)
            async with asyncio.timeout(10):
                while not isinstance((await replies.get()).event, ReplyEnded):
                    pass
        await store.flush()


async def test_the_flow_resumes_where_the_last_worker_left_it(sql_engine: AsyncEngine) -> None:
    for seq, text in enumerate(
        ["Hi there", "My order 12345 has not arrived", "Thanks, that worked"], start=1
    ):
        await _worker_answers(sql_engine, seq, text)
    async with sql_engine.connect() as conn:
        states = (await conn.execute(select(TurnRow.flow_state).order_by(TurnRow.seq))).scalars()
        # Restarting from "greet" at every turn would give understand three times.
        assert list(states) == ["understand", "resolve", "confirm"]
