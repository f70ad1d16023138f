"""A dialogue manager on the in-process bus with test stages, for the manager's tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from agent.bus import InProcessBus, Subscription
from agent.dialogue import DialogueManager, ManagerSettings, Stages
from agent.emotion import LexiconRecognizer
from agent.events import Event, ReplyEnded, TurnFailed, UserTurn
from agent.generation import TemplateGenerator
from agent.metrics import Metrics
from memory import InMemoryTurnLedger
from memory.ledger import ClaimOutcome, TurnLedger
from policies import RulePolicy
from tests.support.stores import ListStore

__all__ = ["HookedLedger", "running", "stages", "turn", "until_ended"]


def turn(seq: int, text: str = "Where is my parcel?", session: str = "s1") -> UserTurn:
    return UserTurn(
        session_id=session, user_id="u1", turn_id=f"t{seq}", seq=seq, text=text, sent_at=0.0
    )


class HookedLedger(InMemoryTurnLedger):
    """The embedded ledger, running `before_claim` first: where a shared ledger's claim
    would make its database round trip, or fail on an outage."""

    def __init__(self, before_claim: Callable[[], Awaitable[None]]) -> None:
        super().__init__()
        self._before_claim = before_claim

    async def claim(
        self,
        session_id: str,
        seq: int,
        payload: bytes,
        *,
        worker: str,
        now: float,
        lease: float,
        gap_timeout: float,
    ) -> ClaimOutcome:
        await self._before_claim()
        return await super().claim(
            session_id, seq, payload, worker=worker, now=now, lease=lease, gap_timeout=gap_timeout
        )


def stages(store: ListStore, *, token_delay: float = 0.0) -> Stages:
    return Stages(
        recognizer=LexiconRecognizer(),
        policy=RulePolicy(),
        generator=TemplateGenerator(token_delay=token_delay),
        store=store,
    )


@asynccontextmanager
async def running(
    store: ListStore,
    *,
    workers: int = 1,
    token_delay: float = 0.0,
    ledger: TurnLedger | None = None,
    settings: ManagerSettings | None = None,
    metrics: Metrics | None = None,
) -> AsyncIterator[tuple[InProcessBus, list[DialogueManager]]]:
    ledger = ledger or InMemoryTurnLedger()
    async with AsyncExitStack() as stack:
        bus = await stack.enter_async_context(InProcessBus())
        managers = [
            await stack.enter_async_context(
                DialogueManager(
                    bus,
                    stages(store, token_delay=token_delay),
                    ledger,
                    metrics=metrics or Metrics(),
                    settings=settings,
                    worker_id=f"w{n}",
                )
            )
            for n in range(workers)
        ]
        yield bus, managers


async def until_ended(sub: Subscription, count: int) -> list[Event]:
    events: list[Event] = []
    ended = 0
    async with asyncio.timeout(10):
        while ended < count:
            event = (await sub.get()).event
            events.append(event)
            ended += isinstance(event, ReplyEnded | TurnFailed)
    return events
