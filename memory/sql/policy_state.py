"""Learned policy state shared by every worker of a tenant, in `PolicyStateRow`.

A worker merges what it learned into the stored state inside one write
transaction (holding an advisory lock on the policy's key on PostgreSQL;
SQLite's write lock does it there), so concurrent workers serialise and
nothing is lost.
`PolicyStateSync` does that every `interval` seconds while entered, and
once more on the way out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.errors import StoreError
from memory.periodic import Periodic
from memory.sql.engine import store_errors, upsert_adding, write_engine
from memory.sql.models import PolicyStateRow

__all__ = ["PolicyStateSync", "exchange_policy_state", "load_policy_state"]

_log = structlog.get_logger(__name__)

Merge = Callable[[Mapping[str, Any] | None], dict[str, Any]]


async def load_policy_state(
    engine: AsyncEngine, *, tenant: str, policy: str
) -> dict[str, Any] | None:
    """The stored state of `policy`, or None before anything was stored."""
    query = select(PolicyStateRow.state).where(
        PolicyStateRow.tenant == tenant, PolicyStateRow.policy == policy
    )
    with store_errors("reading a policy's state"):
        async with engine.connect() as conn:
            state = (await conn.execute(query)).scalar_one_or_none()
    return None if state is None else dict(state)


async def exchange_policy_state(
    engine: AsyncEngine, *, tenant: str, policy: str, merge: Merge
) -> int:
    """Store `merge(stored state)` in one locked transaction; returns the new version."""
    query = select(PolicyStateRow.state, PolicyStateRow.version).where(
        PolicyStateRow.tenant == tenant, PolicyStateRow.policy == policy
    )
    with store_errors("storing a policy's state"):
        async with write_engine(engine).begin() as conn:
            if engine.dialect.name == "postgresql":
                # A row lock cannot guard a row that does not exist yet: lock the key.
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                    {"key": f"heartline-policy-state/{tenant}/{policy}"},
                )
            row = (await conn.execute(query)).one_or_none()
            merged = merge(None if row is None else dict(row.state))
            version = 1 if row is None else row.version + 1
            upsert = upsert_adding(
                engine,
                PolicyStateRow.__table__,
                conflict=("tenant", "policy"),
                replace=("state", "version", "updated_at"),
            )
            await conn.execute(
                upsert,
                {
                    "tenant": tenant,
                    "policy": policy,
                    "state": merged,
                    "version": version,
                    "updated_at": time.time(),
                },
            )
    return version


class PolicyStateSync:
    """Merges a learner's state into the shared one every `interval` seconds while entered.

    Entering merges once (so a worker starts from what the others learned);
    a failed periodic merge is logged and tried again at the next interval;
    leaving merges once more (a bounded wait).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        tenant: str,
        policy: str,
        merge: Merge,
        interval: float = 30.0,
        final_timeout: float = 10.0,
    ) -> None:
        if final_timeout <= 0:
            raise ValueError("final_timeout must be positive")
        self._engine = engine
        self._tenant = tenant
        self._policy = policy
        self._merge = merge
        self._final_timeout = final_timeout
        self._periodic = Periodic(self.sync, interval=interval, name="policy_state.sync")

    async def __aenter__(self) -> PolicyStateSync:
        await self.sync()
        await self._periodic.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._periodic.__aexit__(exc_type, exc, tb)
        try:
            async with asyncio.timeout(self._final_timeout):
                await self.sync()
        except (StoreError, TimeoutError, ValueError) as error:
            _log.warning("policy_state.final_sync_failed", policy=self._policy, error=str(error))

    async def sync(self) -> int:
        """Merge now; returns the stored version."""
        return await exchange_policy_state(
            self._engine, tenant=self._tenant, policy=self._policy, merge=self._merge
        )
