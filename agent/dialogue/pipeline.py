"""One turn from `UserTurn` to `ReplyEnded`: recognize, build context, decide, generate, record.

The pipeline publishes each step's event as soon as it has it, so a client
sees the emotion and the decision before the first reply token. Recording the
turn happens after the reply and through the store's write-behind queue, off
the path to the first token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from agent.dialogue.handoff import handoff_events
from agent.dialogue.interrupt import run_interruptible
from agent.dialogue.learning import Decided, Learner
from agent.dialogue.session import SessionState
from agent.dialogue.unanswered import (
    HUMAN_GENERATOR,
    PERSON_DECISION,
    SKIPPED_GENERATOR,
    silent_end,
)
from agent.emotion.base import EmotionRecognizer
from agent.emotion.conversation import update_mood
from agent.emotion.fusion import FusionWeights, fuse
from agent.errors import HeartlineError, StageError, StoreError
from agent.events import (
    MAX_TEXT_CHARS,
    DecisionMade,
    EmotionRead,
    Event,
    ReplyDelta,
    ReplyEnded,
    ReplyStarted,
    UserTurn,
)
from agent.generation.base import GenerationRequest, Generator
from agent.language import detect_language
from agent.values import (
    Action,
    Decision,
    EmotionReading,
    Exchange,
    HistorySummary,
    Strategy,
    Tone,
    TurnContext,
)
from memory.records import TurnRecord
from memory.store import ConversationStore
from policies.base import Policy

__all__ = [
    "FALLBACK_DECISION",
    "PipelineSettings",
    "Publish",
    "Stages",
    "TurnOutcome",
    "TurnPipeline",
]

Publish = Callable[[Event], Awaitable[None]]

_log = structlog.get_logger(__name__)

FALLBACK_DECISION = Decision(
    action=Action.REPLY,
    strategy=Strategy.INFORM,
    tone=Tone.NEUTRAL,
    confidence=0.0,
    policy="fallback",
    reasons=("every policy abstained",),
)


class FlowMachine(Protocol):
    """A conversation flow (`policies.flows.Flow`): the state after a turn, given the one before."""

    def advance(self, state: str | None, context: TurnContext) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Stages:
    """The pluggable parts of the pipeline."""

    recognizer: EmotionRecognizer
    policy: Policy
    generator: Generator
    store: ConversationStore
    learner: Learner | None = None
    flow: FlowMachine | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineSettings:
    # How a turn's client signals weigh against its text (agent.emotion.fusion)
    fusion: FusionWeights = field(default_factory=FusionWeights)
    # Timeouts
    emotion_timeout: float = 5.0
    history_timeout: float = 2.0
    generation_timeout: float = 60.0
    cancel_cleanup_timeout: float = 2.0


def _keep_history(state: SessionState, loaded: asyncio.Task[HistorySummary | None]) -> None:
    if not loaded.cancelled():
        state.history = loaded.result()


@dataclass(slots=True)
class _Reply:
    """What the generator produced so far; filled in by the generation task."""

    pieces: list[str] = field(default_factory=list)
    chars: int = 0
    first_at: float | None = None
    error: StageError | None = None
    answered_by: str | None = None  # set once the generator's stream is open


@dataclass(slots=True)
class _Stopwatch:
    marks: dict[str, float] = field(default_factory=dict)
    _last: float = field(default_factory=time.perf_counter)

    def lap(self, stage: str) -> None:
        """Add the time since the last lap to `stage` (a stage may lap several times)."""
        now = time.perf_counter()
        self.marks[stage] = round(self.marks.get(stage, 0.0) + (now - self._last) * 1000.0, 3)
        self._last = now


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """How a turn ended (the last event its client got) and what was kept of it (None:
    skipped, nothing kept)."""

    ended: ReplyEnded
    record: TurnRecord | None


class TurnPipeline:
    def __init__(self, stages: Stages, settings: PipelineSettings) -> None:
        self._stages = stages
        self._settings = settings

    async def run(
        self,
        turn: UserTurn,
        state: SessionState,
        *,
        publish: Publish,
        reading: Awaitable[EmotionReading] | None,
        interrupt: asyncio.Event,
        started: float,
        queued_ms: float,
    ) -> TurnOutcome:
        """Answer one turn, publishing its events; how it ended and what was kept.

        `reading` is the turn's `recognize`, under way since the turn came: it depends
        on nothing the caller waits for first (the claim, the conversation's catch-up).
        None only for a turn cancelled before it started, which is skipped unread.

        The turn is committed to the store before its `ReplyEnded` goes out: a
        client told that its turn is answered finds it in the history, whatever
        crashes next. `started` is the `time.perf_counter()` at which the worker got the
        turn. A turn cancelled before it started (`interrupt` already set) is
        skipped: nothing is kept. Raises `StageError` when a stage fails; safe to cancel
        (the turn then counts as not answered and its ledger lease lets another
        worker take it over).
        """
        clock = _Stopwatch()
        clock.marks["queue"] = round(queued_ms, 3)
        if interrupt.is_set() or reading is None:
            return TurnOutcome(await self._skip(turn, state, publish, clock, started), None)
        if turn.human_agent is not None:
            return await self._keep_for_person(
                turn, turn.human_agent, state, publish, reading, clock, started
            )
        emotion, context, decision = await self._understand(turn, state, publish, reading, clock)
        features = self._learn_from(turn, state, context, decision)
        ended = await self._reply(turn, context, decision, publish, interrupt, clock, started)
        state.conversation.append(
            Exchange(
                text=turn.text,
                reply=ended.text,
                emotion=emotion,
                strategy=decision.strategy,
                flow_state=context.flow_state,
            )
        )
        state.mood = context.mood
        record = TurnRecord(
            session_id=turn.session_id,
            user_id=turn.user_id,
            turn_id=turn.turn_id,
            seq=turn.seq,
            text=turn.text,
            reply=ended.text,
            interrupted=ended.interrupted,
            generator=ended.generator,
            emotion=emotion,
            decision=decision,
            created_at=time.time(),
            tenant=turn.tenant,
            features=features,
            flow_state=context.flow_state,
        )
        await self._keep(record)
        await publish(ended)
        return TurnOutcome(ended, record)

    async def _skip(
        self,
        turn: UserTurn,
        state: SessionState,
        publish: Publish,
        clock: _Stopwatch,
        started: float,
    ) -> ReplyEnded:
        """End a turn cancelled before it started, at next to no cost: under a backlog of
        barge-ins, the superseded turns must not take the workers' time. What the user
        said stays in the conversation the next turn sees; with no reading of its own,
        it is not stored."""
        state.conversation.append(Exchange(text=turn.text, reply=""))
        ended = silent_end(turn, SKIPPED_GENERATOR, clock.marks, started, interrupted=True)
        await publish(ended)
        return ended

    async def _keep(self, record: TurnRecord) -> None:
        """Commit the turn; while the database is away this waits for it to come back."""
        try:
            await self._stages.store.record_turn(record, durable=True)
        except StoreError as exc:
            # The reply reached the user; answering again would repeat it.
            _log.error("turn not recorded", session_id=record.session_id, error=str(exc))

    async def _keep_for_person(
        self,
        turn: UserTurn,
        agent: str,
        state: SessionState,
        publish: Publish,
        pending: Awaitable[EmotionReading],
        clock: _Stopwatch,
        started: float,
    ) -> TurnOutcome:
        """A turn of a session a person has taken over: read and keep it; the bot is silent.

        The reading still reaches the client and staff (it is the mood the person
        sees), and the turn ends with an empty `ReplyEnded` from `human`. The
        conversation flow starts over once the bot has the session back: whatever
        state it was in (an escalation, say) was the person's to settle.
        """
        sid, tid = turn.session_id, turn.turn_id
        reading = await pending
        clock.lap("emotion")
        await publish(EmotionRead(session_id=sid, turn_id=tid, reading=reading))
        state.mood = update_mood(state.mood, reading)
        state.conversation.append(Exchange(text=turn.text, reply="", emotion=reading))
        decision = dataclasses.replace(PERSON_DECISION, policy=f"human:{agent}"[:64])
        clock.lap("publish")
        ended = silent_end(turn, HUMAN_GENERATOR, clock.marks, started, interrupted=False)
        record = TurnRecord(
            session_id=sid,
            user_id=turn.user_id,
            turn_id=tid,
            seq=turn.seq,
            text=turn.text,
            reply="",
            interrupted=False,
            generator=HUMAN_GENERATOR,
            emotion=reading,
            decision=decision,
            created_at=time.time(),
            tenant=turn.tenant,
        )
        await self._keep(record)
        await publish(ended)
        return TurnOutcome(ended, record)

    def _learn_from(
        self, turn: UserTurn, state: SessionState, context: TurnContext, decision: Decision
    ) -> tuple[float, ...] | None:
        """Credit the previous turn with the valence change, remember this one; its features."""
        learner = self._stages.learner
        if learner is None:
            return None
        if state.decided:
            previous = next(reversed(state.decided.values()))
            learner.learn(
                previous.features,
                previous.strategy,
                feedback=None,
                valence_before=previous.valence,
                valence_after=context.emotion.valence,
            )
        features = learner.features(context)
        state.remember(turn.turn_id, Decided(features, decision.strategy, context.emotion.valence))
        return features

    async def _understand(
        self,
        turn: UserTurn,
        state: SessionState,
        publish: Publish,
        pending: Awaitable[EmotionReading],
        clock: _Stopwatch,
    ) -> tuple[EmotionReading, TurnContext, Decision]:
        """Read the emotion, gather the context and decide; publish each result.

        The turn's mood goes into the context here but into `state` only once
        the turn is answered, together with its exchange.
        """
        sid, tid = turn.session_id, turn.turn_id
        try:
            async with asyncio.TaskGroup() as group:
                # The first turn of a session loads the history while the emotion is read.
                if state.history is None:
                    history = group.create_task(self._history(turn))
                    history.add_done_callback(lambda done: _keep_history(state, done))
                reading = await pending
                clock.lap("emotion")
                await publish(EmotionRead(session_id=sid, turn_id=tid, reading=reading))
                clock.lap("publish")
        except ExceptionGroup as failed:  # only the body can fail: `_history` never raises
            raise failed.exceptions[0]  # noqa: B904 - keep the stage's own cause
        context = TurnContext(
            text=turn.text,
            emotion=reading,
            history=state.history or HistorySummary.first_time(),
            conversation=tuple(state.conversation),
            mood=update_mood(state.mood, reading),
            now=time.time(),
        )
        if self._stages.flow is not None:
            before = state.conversation[-1].flow_state if state.conversation else None
            after = self._stages.flow.advance(before, context)
            context = dataclasses.replace(context, flow_state=after)
        clock.lap("context")
        decision = self._decide(context)
        clock.lap("policy")
        await publish(DecisionMade(session_id=sid, turn_id=tid, decision=decision))
        if decision.action is Action.HANDOFF:
            for event in handoff_events(turn, reading, decision, now=time.time()):
                await publish(event)
        clock.lap("publish")
        return reading, context, decision

    async def _reply(
        self,
        turn: UserTurn,
        context: TurnContext,
        decision: Decision,
        publish: Publish,
        interrupt: asyncio.Event,
        clock: _Stopwatch,
        started: float,
    ) -> ReplyEnded:
        """Stream the reply until it ends or barge-in interrupts it; its end, which the
        caller publishes once the turn is kept."""
        sid, tid = turn.session_id, turn.turn_id
        request = GenerationRequest(
            session_id=sid,
            turn_id=tid,
            text=turn.text,
            language=detect_language(turn.text),
            emotion=context.emotion,
            decision=decision,
            history=context.history,
            conversation=context.conversation,
        )
        generator = self._stages.generator.name
        await publish(ReplyStarted(session_id=sid, turn_id=tid, generator=generator))
        clock.lap("publish")
        reply = _Reply()
        interrupted = await run_interruptible(
            self._generate(request, reply, publish, clock),
            interrupt,
            cleanup_timeout=self._settings.cancel_cleanup_timeout,
        )
        clock.lap("generate")
        if reply.error is not None and not interrupted:
            raise reply.error
        text = "".join(reply.pieces)
        answered_by = reply.answered_by or generator
        total_ms = (time.perf_counter() - started) * 1000.0
        ttft_ms = total_ms if reply.first_at is None else (reply.first_at - started) * 1000.0
        return ReplyEnded(
            session_id=sid,
            turn_id=tid,
            text=text,
            interrupted=interrupted,
            generator=answered_by,
            ttft_ms=round(ttft_ms, 3),
            total_ms=round(total_ms, 3),
            stages=clock.marks,
        )

    async def recognize(self, turn: UserTurn) -> EmotionReading:
        """The text's reading, fused with the client's signals when the turn has some.

        Raises `StageError` when recognition fails or passes `emotion_timeout`.
        """
        try:
            async with asyncio.timeout(self._settings.emotion_timeout):
                (reading,) = await self._stages.recognizer.read_batch([turn.text])
        except TimeoutError as exc:
            raise StageError("emotion", "emotion recognition timed out") from exc
        except Exception as exc:
            raise StageError("emotion", "emotion recognition failed") from exc
        if turn.signals is None:
            return reading
        return fuse(reading, turn.signals, self._settings.fusion)

    async def _history(self, turn: UserTurn) -> HistorySummary | None:
        """The history of the turn's user, or None when the store cannot give it in time.

        A turn is better answered without history than not at all; the next
        turn of the session tries again.
        """
        try:
            async with asyncio.timeout(self._settings.history_timeout):
                return await self._stages.store.history(
                    turn.user_id, now=time.time(), session_id=turn.session_id, tenant=turn.tenant
                )
        except TimeoutError:
            _log.warning(
                "history not loaded in time; deciding without it", session_id=turn.session_id
            )
        except HeartlineError as exc:
            _log.warning("history unavailable; deciding without it", error=str(exc))
        return None

    def _decide(self, context: TurnContext) -> Decision:
        try:
            decision = self._stages.policy.decide(context)
        except Exception as exc:
            raise StageError("policy", "the policy failed to decide") from exc
        return FALLBACK_DECISION if decision is None else decision

    async def _generate(
        self, request: GenerationRequest, reply: _Reply, publish: Publish, clock: _Stopwatch
    ) -> None:
        sid, tid = request.session_id, request.turn_id
        try:
            async with asyncio.timeout(self._settings.generation_timeout):
                stream = await self._stages.generator.open(request)
                reply.answered_by = stream.answered_by
                async with aclosing(stream):
                    async for piece in stream:
                        if reply.first_at is None:
                            reply.first_at = time.perf_counter()
                            clock.lap("first_token")
                        # A reply is at most what one event carries: an LLM that runs on
                        # is cut there, and the deltas still add up to the reply's text.
                        text = piece[: MAX_TEXT_CHARS - reply.chars]
                        await publish(
                            ReplyDelta(
                                session_id=sid, turn_id=tid, seq=len(reply.pieces), text=text
                            )
                        )
                        reply.pieces.append(text)
                        reply.chars += len(text)
                        if reply.chars == MAX_TEXT_CHARS:
                            _log.warning(
                                "reply cut at the longest text an event carries",
                                session_id=sid,
                                turn_id=tid,
                                chars=MAX_TEXT_CHARS,
                            )
                            break
        except TimeoutError as exc:
            reply.error = StageError("generation", "the reply took too long")
            reply.error.__cause__ = exc
        except Exception as exc:
            _log.exception("generator failed", session_id=sid, turn_id=tid)
            reply.error = StageError("generation", "the generator failed")
            reply.error.__cause__ = exc
