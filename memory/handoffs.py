"""The handoff outbox seam: webhook deliveries kept durable until a help desk has them.

A delivery is recorded before anything is posted, so a process that stops
loses none. Posting claims a due delivery first: the claim counts the attempt
and pushes `next_attempt_at` a lease ahead, so no other process takes it while
it is in flight, and one whose process died comes due again when the lease ends.
The attempt number a claim holds fences the marks that follow it: a claim
overtaken by another (its lease ran out) can no longer reschedule or fail the
delivery, though a success still counts (the receiver has the document).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

__all__ = [
    "ClaimedDelivery",
    "DeliveryRecord",
    "DeliveryStatus",
    "HandoffOutbox",
    "NewDelivery",
]


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class NewDelivery:
    """A document to post; `body` is its exact JSON text (what is signed)."""

    delivery_id: str
    tenant: str
    session_id: str
    user_id: str
    trigger: str
    body: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimedDelivery:
    """A delivery this process may post now; `attempt` is this attempt's number (from 1)."""

    delivery_id: str
    tenant: str
    session_id: str
    body: str
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryRecord:
    """A delivery as recorded, without its body: what an operator looks at."""

    delivery_id: str
    tenant: str
    session_id: str
    user_id: str
    trigger: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float
    last_status: int | None
    last_error: str | None
    created_at: float
    delivered_at: float | None


class HandoffOutbox(Protocol):
    """Deliveries of handoff documents. Times are epoch seconds passed in as `now`."""

    async def record(self, delivery: NewDelivery, *, now: float) -> bool:
        """Keep `delivery`, due at once; False if its id was recorded before."""
        ...

    async def claim_due(self, *, now: float, limit: int, lease: float) -> list[ClaimedDelivery]:
        """Up to `limit` pending deliveries due by `now`, each claimed for `lease` seconds."""
        ...

    async def delivered(self, claim: ClaimedDelivery, *, status: int, now: float) -> bool:
        """The receiver accepted the document; False if it was settled already."""
        ...

    async def retry(
        self, claim: ClaimedDelivery, *, at: float, status: int | None, error: str
    ) -> bool:
        """Try again at `at`; False if the claim was overtaken (nothing changed)."""
        ...

    async def fail(self, claim: ClaimedDelivery, *, status: int | None, error: str) -> bool:
        """Give up on the delivery; False if the claim was overtaken (nothing changed)."""
        ...

    async def get(self, delivery_id: str) -> DeliveryRecord | None:
        """One delivery's record, or None if there is none."""
        ...
