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

    A failed merge is logged and tried again at the next interval; the last
    merge runs on the way out (a bounded wait).
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
        if interval <= 0 or final_timeout <= 0:
            raise ValueError("interval and final_timeout must be positive")
        self._engine = engine
        self._tenant = tenant
        self._policy = policy
        self._merge = merge
        self._interval = interval
        self._final_timeout = final_timeout
        self._group: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PolicyStateSync:
        if self._group is not None:
            raise RuntimeError("this PolicyStateSync is already running")
        await self.sync()  # start from what the other workers learned
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._task = self._group.create_task(self._run(), name="heartline-policy-sync")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        group, task = self._group, self._task
        assert group is not None, "__aexit__ without __aenter__"
        assert task is not None
        self._group = self._task = None
        task.cancel()
        await group.__aexit__(exc_type, exc, tb)
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

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sync()
            except (StoreError, TimeoutError, ValueError) as error:
                _log.warning("policy_state.sync_failed", policy=self._policy, error=str(error))
