"""What the store's writer pays to commit one batch: CPU per batch and per turn, by size.

Under streaming load a serving process commits small batches (a turn waits at most
`HEARTLINE_WRITE_MAX_WAIT` for company, and a reply's end waits for its commit), so the
fixed cost of a batch is paid nearly once a turn. This writes `--batches` batches of
each size in `--sizes` through `memory.sql.batch.write_batch` into a fresh database
(SQLite in a temporary folder, or `--database-url`: a database of its own, as its rows
stay there), two turns a user, and prints the process's CPU (user and system, the
driver's thread included) per batch and per turn, with the wall time per batch.

    .venv/bin/python bench/batch_cost.py
    .venv/bin/python bench/batch_cost.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from _stats import machine_summary
from history_speed import bench_turn

from memory.records import TurnRecord
from memory.sealing import TenantSealers
from memory.sql import open_engine, upgrade_schema
from memory.sql.batch import write_batch
from memory.sql.units import open_units


def _turn(number: int, run: str) -> TurnRecord:
    user = f"{run}-u{number // 2}"
    return bench_turn("default", user, f"{user}-s", number, time.time())


async def _measure(url: str, sizes: list[int], batches: int) -> None:
    engine = open_engine(url)
    try:
        await upgrade_schema(engine)
        writer, sealers = open_units(engine, write=True, name="bench-writer"), TenantSealers()
        run = f"bench{time.time_ns()}"
        number = 0
        print(f"{'turns a batch':>14} {'CPU ms a batch':>15} {'CPU ms a turn':>14} {'wall ms':>8}")
        for size in sizes:
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(batches):
                batch = [_turn(number + i, run) for i in range(size)]
                number += size
                await write_batch(writer, batch, sealers=sealers)
            cpu_ms = (time.process_time() - cpu) / batches * 1000
            wall_ms = (time.perf_counter() - wall) / batches * 1000
            print(f"{size:>14} {cpu_ms:>15.2f} {cpu_ms / size:>14.3f} {wall_ms:>8.2f}")
        await writer.aclose()
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16", help="turns a batch, comma-separated")
    parser.add_argument("--batches", type=int, default=300, help="batches of each size")
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    print(machine_summary())
    with tempfile.TemporaryDirectory(prefix="heartline-bench-") as folder:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        print(f"database: {url.split('://')[0]}; {args.batches} batches of each size")
        asyncio.run(_measure(url, sizes, args.batches))
    return 0


if __name__ == "__main__":
    sys.exit(main())
