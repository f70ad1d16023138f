"""Session churn: does a serving process give back what each closed session held?

N cycles of connect, one turn, disconnect against one `heartline serve` process, C at a
time; the server's RSS is sampled every 1,000 cycles and after the last. Printed: the
RSS series, its growth per cycle over the first 10,000 cycles after the first 1,000
(the warm-up fills caches and pools) and over the rest, and the server's CPU seconds per
cycle. The floor of a cycle is nothing at all: whatever stays after a session closed is
what Heartline kept.

    .venv/bin/python bench/session_cycles.py                    # 10,000 cycles, 20 at a time
    .venv/bin/python bench/session_cycles.py --cycles 30000
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
from collections.abc import Sequence

from _servers import ServerHandle, embedded_server
from _stats import machine_summary, process_usage
from websockets.asyncio.client import connect

MIB = 1024 * 1024
WARM_UP = 1_000
TEXT = "Where is my parcel? I have been waiting for days."


async def _cycle(handle: ServerHandle, index: int, failed: collections.Counter[str]) -> None:
    token = handle.token_for(index)
    try:
        async with asyncio.timeout(30):
            async with connect(
                handle.url, additional_headers={"Authorization": f"Bearer {token}"}
            ) as ws:
                await ws.recv()  # ready
                await ws.send(json.dumps({"type": "user_message", "id": "t1", "text": TEXT}))
                while (message := json.loads(await ws.recv()))["type"] != "reply_end":
                    if message["type"] == "error":
                        failed[message.get("code", "error")] += 1
                        return
    except (OSError, TimeoutError) as exc:
        failed[type(exc).__name__] += 1


async def run(args: argparse.Namespace) -> None:
    failed: collections.Counter[str] = collections.Counter()
    series: list[tuple[int, int]] = []
    async with embedded_server(rate=1000.0, env={"HEARTLINE_WORKERS": "1"}) as handle:
        start = process_usage(handle.pids.values())
        series.append((0, start.rss))
        done = 0
        while done < args.cycles:
            batch = min(1_000, args.cycles - done)
            lanes = [
                range(done + lane, done + batch, args.concurrency)
                for lane in range(args.concurrency)
            ]

            async def lane(indexes: range) -> None:
                for index in indexes:
                    await _cycle(handle, index, failed)

            await asyncio.gather(*(lane(indexes) for indexes in lanes))
            done += batch
            series.append((done, process_usage(handle.pids.values()).rss))
        end = process_usage(handle.pids.values())
    _report(args, series, end.cpu_s - start.cpu_s, failed)


def _report(
    args: argparse.Namespace,
    series: list[tuple[int, int]],
    cpu_s: float,
    failed: collections.Counter[str],
) -> None:
    print(machine_summary())
    print(f"{args.cycles} cycles of connect / one turn / disconnect, {args.concurrency} at a time")
    for cycles, rss in series:
        print(f"  after {cycles:>6} cycles: RSS {rss / MIB:7.1f} MiB")
    rss_at = dict(series)
    first_end = min(args.cycles, WARM_UP + 10_000)
    if args.cycles > WARM_UP:
        grown = (rss_at[first_end] - rss_at[WARM_UP]) / (first_end - WARM_UP)
        print(f"growth, cycles {WARM_UP}-{first_end}: {grown:.0f} B/cycle")
    if args.cycles > first_end:
        grown = (rss_at[args.cycles] - rss_at[first_end]) / (args.cycles - first_end)
        print(f"growth, cycles {first_end}-{args.cycles}: {grown:.0f} B/cycle")
    print(f"server CPU: {cpu_s * 1000 / args.cycles:.2f} ms per cycle")
    print(f"failed: {dict(failed) or 0}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args(argv)
    if args.cycles < 1 or args.concurrency < 1:
        parser.error("--cycles and --concurrency must be at least 1")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
