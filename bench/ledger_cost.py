"""What the shared turn ledger costs a turn: a claim and a completion, CPU and wall time.

In the distributed set-up every turn is claimed in the ledger before it runs and
completed after: two write transactions a turn, on the database the workers share. This
claims and completes `--turns` turns spread over `--sessions` sessions, in order, through
`memory.sql.SqlTurnLedger` on a fresh database (SQLite in a temporary folder, or
`--database-url`: a database of its own, as its rows stay there), and prints the
process's CPU (user and system) and the wall time per turn.

    .venv/bin/python bench/ledger_cost.py
    .venv/bin/python bench/ledger_cost.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from _stats import machine_summary

from memory.sql import SqlTurnLedger, open_engine, upgrade_schema

_WORKER = "bench-worker"


async def _measure(url: str, turns: int, sessions: int) -> None:
    engine = open_engine(url)
    try:
        await upgrade_schema(engine)
        ledger = SqlTurnLedger(engine)
        run = f"bench{time.time_ns()}"

        async def one(session: str, seq: int) -> None:
            await ledger.claim(
                session,
                seq,
                b"payload",
                worker=_WORKER,
                now=time.time(),
                lease=30.0,
                gap_timeout=5.0,
            )
            await ledger.complete(session, seq, worker=_WORKER, ending=b"ending")

        await one(f"{run}-warm-up", 1)
        cpu, wall = time.process_time(), time.perf_counter()
        for number in range(turns):
            await one(f"{run}-{number % sessions}", number // sessions + 1)
        cpu_ms = (time.process_time() - cpu) / turns * 1000
        wall_ms = (time.perf_counter() - wall) / turns * 1000
        print(f"claim + complete: {cpu_ms:.2f} ms CPU, {wall_ms:.2f} ms wall a turn")
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=400, help="turns claimed and completed")
    parser.add_argument("--sessions", type=int, default=50, help="sessions they belong to")
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    args = parser.parse_args(argv)
    if args.turns < 1 or args.sessions < 1:
        parser.error("--turns and --sessions must be at least 1")
    print(machine_summary())
    with tempfile.TemporaryDirectory(prefix="heartline-bench-") as folder:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        print(f"database: {url.split('://')[0]}; {args.turns} turns of {args.sessions} sessions")
        asyncio.run(_measure(url, args.turns, args.sessions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
