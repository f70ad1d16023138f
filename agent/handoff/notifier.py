"""`HandoffNotifier`: handoffs recorded durably, then posted to the help desk's webhook.

`submit` builds the document and records it in the outbox before it returns;
posting happens in the notifier's own task group. One loop claims due
deliveries (new ones, retries, and any a previous process left behind) up to
`concurrency` at a time and posts each: signed afresh per attempt, bounded by
`timeout`, judged by `agent.handoff.retry`, the outcome written back. Leaving
stops claiming, lets the attempts in flight finish (each is bounded), and
leaves every unfinished delivery pending for the next notifier on the database.

Logs name deliveries, sessions and outcomes, never what the transcript says.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any

import httpx
import structlog
from structlog.typing import FilteringBoundLogger

from agent.errors import StoreError
from agent.events import HandoffRequested
from agent.handoff.config import WebhookConfig
from agent.handoff.document import build_document, encode_document
from agent.handoff.retry import Failure, Step, Verdict, decide
from agent.handoff.signing import sign
from agent.values import Exchange
from memory.handoffs import ClaimedDelivery, HandoffOutbox, NewDelivery

__all__ = [
    "ATTEMPT_HEADER",
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "HandoffNotifier",
    "Transcript",
]

SIGNATURE_HEADER = "X-Heartline-Signature"
DELIVERY_HEADER = "X-Heartline-Delivery"
ATTEMPT_HEADER = "X-Heartline-Attempt"

Transcript = Callable[[HandoffRequested], Awaitable[Sequence[Exchange]]]
"""The conversation a handoff comes from, oldest exchange first, texts redacted."""

_log = structlog.get_logger(__name__)


class HandoffNotifier:
    """Tells the help desk about handoffs. Use it as an async context manager; not reentrant.

    `transcript` reads the conversation for a request (e.g. from the conversation
    store); `clock` gives epoch seconds and `rng` the jitter draws (a private
    generator unless one is passed), so tests can fix both.
    """

    def __init__(
        self,
        outbox: HandoffOutbox,
        transcript: Transcript,
        config: WebhookConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._outbox = outbox
        self._transcript = transcript
        self._config = config
        self._clock = clock
        self._rng = rng or random.Random()
        self._group: asyncio.TaskGroup | None = None
        self._client: httpx.AsyncClient | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> HandoffNotifier:
        if self._group is not None:
            raise RuntimeError("HandoffNotifier is already running")
        config = self._config
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout),
            limits=httpx.Limits(max_connections=config.concurrency),
            follow_redirects=False,
        )
        self._closing = False
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._spawn(self._claim_loop(), name="heartline-handoff-claims")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Waits for the attempts in flight (each within `timeout` plus its bookkeeping);
        on an error or cancellation they are cancelled instead."""
        group, client = self._group, self._client
        assert group is not None, "__aexit__ without __aenter__"
        assert client is not None
        self._closing = True
        self._wake.set()
        if exc_type is not None:
            for task in self._tasks:
                task.cancel()
        try:
            # The caller's exception goes on as it is, not wrapped in the group's.
            await group.__aexit__(None, None, None)
        finally:
            self._group = self._client = None
            await client.aclose()

    async def submit(self, request: HandoffRequested) -> str:
        """Record `request` for delivery; returns its delivery id. Posting follows soon.

        The same request submitted again (a bus redelivery) is recorded once. When the
        conversation cannot be read in time, the document goes without it and says
        so (`history_missing`). Raises `StoreError` or `TimeoutError` when the
        delivery could not be recorded: nothing will be posted then. Safe to cancel:
        the delivery is recorded or it is not.
        """
        config = self._config
        log = _log.bind(session_id=request.session_id, trigger=request.trigger)
        exchanges: Sequence[Exchange] = ()
        missing = False
        try:
            async with asyncio.timeout(config.store_timeout):
                exchanges = await self._transcript(request)
        except (StoreError, TimeoutError) as error:
            log.warning("handoff.transcript_unavailable", error=str(error))
            missing = True
        document = build_document(
            request, exchanges, max_turns=config.max_turns, history_missing=missing
        )
        delivery = NewDelivery(
            delivery_id=document["id"],
            tenant=request.tenant,
            session_id=request.session_id,
            user_id=request.user_id,
            trigger=request.trigger,
            body=encode_document(document),
        )
        async with asyncio.timeout(config.store_timeout):
            recorded = await self._outbox.record(delivery, now=self._clock())
        log.info(
            "handoff.recorded" if recorded else "handoff.already_recorded",
            delivery_id=delivery.delivery_id,
            transcript_entries=len(document["transcript"]),
        )
        self._wake.set()
        return delivery.delivery_id

    async def _claim_loop(self) -> None:
        config = self._config
        while not self._closing:
            self._wake.clear()
            free = config.concurrency - self._in_flight
            if free > 0:
                claims = await self._claim(free)
                for claim in claims:
                    self._start(claim)
                if len(claims) == free:
                    continue  # more may be due; claim again once a slot frees up
            try:
                async with asyncio.timeout(config.poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _claim(self, limit: int) -> list[ClaimedDelivery]:
        try:
            async with asyncio.timeout(self._config.store_timeout):
                return await self._outbox.claim_due(
                    now=self._clock(), limit=limit, lease=self._config.lease
                )
        except (StoreError, TimeoutError) as error:
            _log.warning("handoff.claim_failed", error=str(error))
            return []

    def _spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        assert self._group is not None
        task = self._group.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start(self, claim: ClaimedDelivery) -> None:
        self._in_flight += 1
        self._spawn(self._deliver(claim), name="heartline-handoff-delivery")

    async def _deliver(self, claim: ClaimedDelivery) -> None:
        log = _log.bind(
            delivery_id=claim.delivery_id, session_id=claim.session_id, attempt=claim.attempt
        )
        config = self._config
        try:
            if claim.attempt > config.attempts:
                # An earlier process claimed the last attempt and stopped without a verdict.
                status: int | None = None
                step = Step(
                    verdict=Verdict.FAILED,
                    error=f"no attempts left after {config.attempts} (the last one's "
                    "process stopped before it recorded an outcome)",
                )
            else:
                result, detail = await self._post(claim)
                status = result if isinstance(result, int) else None
                step = decide(
                    result,
                    attempt=claim.attempt,
                    attempts=config.attempts,
                    backoff=config.backoff,
                    draw=self._rng.random(),
                    detail=detail,
                )
            async with asyncio.timeout(config.store_timeout):
                settled = await self._settle(claim, step, status)
            _log_step(log, step, status, settled=settled)
        except (StoreError, TimeoutError) as error:
            # The claim's lease runs out and the delivery comes due again.
            log.warning("handoff.outcome_not_recorded", error=str(error))
        finally:
            self._in_flight -= 1
            self._wake.set()

    async def _post(self, claim: ClaimedDelivery) -> tuple[int | Failure, str]:
        """Post the body once; the status, or why there was none."""
        assert self._client is not None
        config = self._config
        body = claim.body.encode()
        headers = {
            SIGNATURE_HEADER: sign(config.secret, int(self._clock()), body),
            DELIVERY_HEADER: claim.delivery_id,
            ATTEMPT_HEADER: str(claim.attempt),
            "Content-Type": "application/json",
            "User-Agent": config.user_agent,
        }
        try:
            async with asyncio.timeout(config.timeout):
                response = await self._client.post(config.url, content=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            return Failure.TIMEOUT, f"no response within {config.timeout:g} s"
        except httpx.RequestError as error:
            return Failure.CONNECTION, f"{type(error).__name__}: {error}"
        return response.status_code, ""

    async def _settle(self, claim: ClaimedDelivery, step: Step, status: int | None) -> bool:
        """Write the attempt's outcome back; False if another claim overtook this one."""
        error = step.error or ""
        match step.verdict:
            case Verdict.DELIVERED:
                assert status is not None
                return await self._outbox.delivered(claim, status=status, now=self._clock())
            case Verdict.RETRY:
                at = self._clock() + step.delay
                return await self._outbox.retry(claim, at=at, status=status, error=error)
            case Verdict.FAILED:
                return await self._outbox.fail(claim, status=status, error=error)


def _log_step(log: FilteringBoundLogger, step: Step, status: int | None, *, settled: bool) -> None:
    if not settled:
        # Its lease ran out mid-attempt and another process holds it now.
        log.warning("handoff.claim_overtaken", verdict=step.verdict.value, status=status)
        return
    match step.verdict:
        case Verdict.DELIVERED:
            log.info("handoff.delivered", status=status)
        case Verdict.RETRY:
            log.warning("handoff.retrying", status=status, error=step.error, delay=step.delay)
        case Verdict.FAILED:
            log.error("handoff.failed", status=status, error=step.error)
