"""History summary speed: a user with 10,000 stored turns, on SQLite and PostgreSQL.

Seeds one user with `--turns` turns over many sessions, plus other users'
turns around them, through the real write-behind store; then times
`SqlConversationStore.history` (what the dialogue manager reads before
deciding) and, side by side on the same data, one query that aggregates all
of the user's turns, as the summary did before it kept running totals.
Target: p95 <= 5 ms for the summary on both databases.

    .venv/bin/python bench/history_speed.py
    .venv/bin/python bench/history_speed.py --postgres-url postgresql+asyncpg://me@db/heartline
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _stats import machine_summary, percentile, print_percentile_table
from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.values import Action, Decision, EmotionReading, Strategy, Tone
from memory.records import TurnRecord
from memory.sql import SqlConversationStore, open_engine, upgrade_schema
from memory.sql.models import EmotionRow, TurnRow, UserRow
from memory.sql.users import forget_user

_LABELS = ("joy", "anger", "sadness", "neutral", "fear", "gratitude")
_DECISION = Decision(
    action=Action.REPLY, strategy=Strategy.INFORM, tone=Tone.NEUTRAL, confidence=0.5, policy="bench"
)


def bench_turn(tenant: str, user: str, session: str, seq: int, at: float) -> TurnRecord:
    """A support turn with a reading and a decision, as the benchmarks store them."""
    label = _LABELS[(seq * 7 + len(session)) % len(_LABELS)]
    return TurnRecord(
        tenant=tenant,
        session_id=session,
        user_id=user,
        turn_id=f"{session}-{seq}",
        seq=seq,
        text="my order has not arrived and nobody answers the phone",
        reply="I am sorry about that, let me check the order for you",
        interrupted=False,
        generator="template",
        emotion=EmotionReading(
            scores={label: 0.7, "neutral": 0.3} if label != "neutral" else {"neutral": 1.0},
            dominant=label,
            valence=0.5 if label in ("joy", "gratitude") else -0.4,
            arousal=0.5,
            intensity=0.6,
            model="bench",
        ),
        decision=_DECISION,
        created_at=at,
    )


async def _seed(
    store: SqlConversationStore, tenant: str, user: str, turns: int, others: int
) -> float:
    """`turns` turns of `user` in sessions of 20, and 50 turns of each of `others` users."""
    started = time.perf_counter()
    for n in range(turns):
        session = f"{user}-s{n // 20}"
        await store.record_turn(bench_turn(tenant, user, session, n % 20 + 1, 1_000.0 + n))
    for other in range(others):
        name = f"{user}-other{other}"
        for n in range(50):
            await store.record_turn(
                bench_turn(tenant, name, f"{name}-s{n // 10}", n % 10 + 1, 1_000.0 + n)
            )
    await store.flush()
    return time.perf_counter() - started


async def _aggregate_everything(engine: AsyncEngine, tenant: str, user: str) -> None:
    """The old summary's core: one aggregate over every turn of the user."""
    query = (
        select(func.count(), func.count(distinct(TurnRow.session_id)), func.avg(EmotionRow.valence))
        .select_from(TurnRow)
        .join(EmotionRow, EmotionRow.turn_id == TurnRow.id)
        .join(UserRow, UserRow.id == TurnRow.user_id)
        .where(UserRow.tenant == tenant, UserRow.external_id == user)
    )
    async with engine.connect() as conn:
        (await conn.execute(query)).one()


async def _measure(name: str, url: str, args: argparse.Namespace) -> None:
    engine = open_engine(url)
    tenant, user = f"bench{secrets.token_hex(4)}", "heavy-user"
    try:
        await upgrade_schema(engine)
        async with SqlConversationStore(engine) as store:
            seconds = await _seed(store, tenant, user, args.turns, args.others)
            rows = args.turns + 50 * args.others
            print(f"\n{name}: seeded {rows:,} turns in {seconds:.1f} s ({rows / seconds:,.0f}/s)")
            summary, old = [], []
            for i in range(args.reads + 20):
                started = time.perf_counter()
                result = await store.history(user, now=1e9, session_id=f"new-{i}", tenant=tenant)
                summary.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                await _aggregate_everything(engine, tenant, user)
                old.append((time.perf_counter() - started) * 1000)
            summary, old = summary[20:], old[20:]  # warm-up
        print(f"  summary: {result.describe()}")
        print_percentile_table(
            f"{name}: history of a user with {result.turns:,} turns",
            [("HistorySummary (running totals)", summary), ("aggregate over all turns", old)],
        )
        ratio = percentile(old, 95) / percentile(summary, 95)
        print(f"  p95 ratio, aggregate / summary: {ratio:.1f}x")
    finally:
        for who in [user, *(f"{user}-other{i}" for i in range(args.others))]:
            await forget_user(engine, who, tenant=tenant)
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=10_000, help="turns of the user (10000)")
    parser.add_argument("--others", type=int, default=200, help="other users, 50 turns each")
    parser.add_argument("--reads", type=int, default=500, help="summaries timed (500)")
    parser.add_argument(
        "--postgres-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        help="PostgreSQL to use (its rows are removed afterwards); 'none' to skip",
    )
    args = parser.parse_args(argv)
    print(f"history_speed\nmachine: {machine_summary()}")
    with tempfile.TemporaryDirectory() as folder:
        sqlite = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        asyncio.run(_measure("SQLite", sqlite, args))
    if args.postgres_url != "none":
        asyncio.run(_measure("PostgreSQL", args.postgres_url, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
