"""Overload: more turns than the server can answer, and what it does with them.

N WebSocket sessions each send a `user_message` every 1/R seconds for S seconds, open
loop, without waiting for replies (each one barges in on the last). Then the clients
stop sending and wait for every turn they sent to be settled. Printed: turns sent,
refused with `overloaded` (and their `retry_after_ms`), refused otherwise, answered,
interrupted, skipped, and lost (sent and never settled); TTFT of the answered turns;
the server's RSS before, at its peak and after, and its CPU seconds; how long the
server took to stop on SIGTERM. The per-connection rate limit is raised out of the way,
so admission control is what sheds.

    .venv/bin/python bench/overload.py                      # 300 sessions x 12/s x 20 s
    .venv/bin/python bench/overload.py --sessions 100 --rate 5 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from _servers import ServerHandle, embedded_server
from _stats import machine_summary, percentile, process_usage, raise_open_file_limit
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

MIB = 1024 * 1024


@dataclass
class Tally:
    sent: int = 0
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    settled: set[str] = field(default_factory=set)
    retry_after_ms: list[int] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    closed_early: int = 0


@dataclass
class _Client:
    """One session's turns: when each was sent, which are still unsettled."""

    sent_at: dict[str, float] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)
    sending: bool = True
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def settle(self, turn_id: str, tally: Tally) -> None:
        tally.settled.add(turn_id)
        self.pending.discard(turn_id)
        if not self.sending and not self.pending:
            self.done.set()


async def _read(ws: ClientConnection, client: _Client, tally: Tally) -> None:
    first: set[str] = set()
    sent_at = client.sent_at
    try:
        async for frame in ws:
            message = json.loads(frame)
            kind, turn_id = message["type"], message.get("turn_id")
            if kind == "reply_delta" and turn_id not in first:
                first.add(turn_id)
                tally.ttft_ms.append((time.perf_counter() - sent_at[turn_id]) * 1000.0)
            elif kind == "reply_end":
                if message["generator"] == "skipped":
                    tally.outcomes["skipped"] += 1
                elif message["interrupted"]:
                    tally.outcomes["interrupted"] += 1
                else:
                    tally.outcomes["answered"] += 1
                client.settle(turn_id, tally)
            elif kind == "error" and turn_id is not None:
                tally.outcomes[f"error {message['code']}"] += 1
                client.settle(turn_id, tally)
                if "retry_after_ms" in message:
                    tally.retry_after_ms.append(message["retry_after_ms"])
    except ConnectionClosed:
        tally.closed_early += 1


async def _client(
    handle: ServerHandle, index: int, args: argparse.Namespace, tally: Tally, stop_at: float
) -> None:
    headers = {"Authorization": f"Bearer {handle.token_for(index)}"}
    async with connect(handle.url, additional_headers=headers, max_queue=None) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        client = _Client()
        reader = asyncio.create_task(_read(ws, client, tally))
        n = 0
        with contextlib.suppress(ConnectionClosed):
            while time.perf_counter() < stop_at:
                n += 1
                turn_id = f"c{index}-{n}"
                client.sent_at[turn_id] = time.perf_counter()
                client.pending.add(turn_id)
                tally.sent += 1
                text = "Where is my parcel? I have been waiting for days."
                await ws.send(json.dumps({"type": "user_message", "id": turn_id, "text": text}))
                await asyncio.sleep(1.0 / args.rate)
        client.sending = False
        if not client.pending:
            client.done.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.done.wait(), args.drain_s)
        reader.cancel()


async def _sample_rss(handle: ServerHandle, peak: list[int]) -> None:
    while True:
        peak.append(process_usage(handle.pids.values()).rss)
        await asyncio.sleep(0.5)


async def run(args: argparse.Namespace) -> None:
    raise_open_file_limit(args.sessions * 2 + 100)
    env = {"HEARTLINE_TOKEN_DELAY": str(args.token_delay), "HEARTLINE_WORKERS": str(args.workers)}
    if args.max_turn_wait is not None:
        env["HEARTLINE_MAX_TURN_WAIT"] = str(args.max_turn_wait)
    tally = Tally()
    rss: list[int] = []
    async with embedded_server(
        rate=args.rate * 10, emotion_model=args.emotion_model, env=env
    ) as handle:
        await asyncio.sleep(1.0)
        before = process_usage(handle.pids.values())
        sampler = asyncio.create_task(_sample_rss(handle, rss))
        stop_at = time.perf_counter() + args.seconds
        await asyncio.gather(
            *(_client(handle, i, args, tally, stop_at) for i in range(args.sessions))
        )
        sampler.cancel()
        await asyncio.sleep(2.0)  # sessions closed: what stays
        after = process_usage(handle.pids.values())
        stopping = time.perf_counter()
    stopped_s = time.perf_counter() - stopping
    _report(args, tally, before.rss, max(rss or [0]), after.rss, after.cpu_s - before.cpu_s)
    print(f"stopped on SIGTERM in {stopped_s:.1f} s")


def _report(
    args: argparse.Namespace, tally: Tally, rss_before: int, rss_peak: int, rss_after: int,
    cpu_s: float,
) -> None:  # fmt: skip
    print(machine_summary())
    print(
        f"{args.sessions} sessions x {args.rate}/s x {args.seconds} s, "
        f"{args.workers} serving process(es), {args.emotion_model}, "
        f"token delay {args.token_delay} s, max turn wait {args.max_turn_wait or 'default'}"
    )
    lost = tally.sent - len(tally.settled)
    print(f"sent {tally.sent}, settled {len(tally.settled)}, lost {lost}")
    for outcome, count in sorted(tally.outcomes.items()):
        print(f"  {outcome:<26} {count:>7}  ({100.0 * count / max(1, tally.sent):.1f} %)")
    if tally.retry_after_ms:
        waits = tally.retry_after_ms
        print(
            f"retry_after_ms p50 {percentile(waits, 50):.0f}, "
            f"p99 {percentile(waits, 99):.0f}, max {max(waits)}"
        )
    if tally.ttft_ms:
        ttft = tally.ttft_ms
        print(
            f"TTFT of answered and interrupted turns: p50 {percentile(ttft, 50):.0f} ms, "
            f"p99 {percentile(ttft, 99):.0f} ms"
        )
    print(
        f"server RSS: before {rss_before / MIB:.0f} MiB, peak {rss_peak / MIB:.0f} MiB, "
        f"after {rss_after / MIB:.0f} MiB; CPU {cpu_s:.1f} s "
        f"({1000.0 * cpu_s / max(1, tally.sent):.2f} ms per turn sent)"
    )
    if tally.closed_early:
        print(f"connections closed by the server: {tally.closed_early}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--rate", type=float, default=12.0, help="messages per second per session")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--drain-s", type=float, default=60.0, help="how long to wait for the rest")
    parser.add_argument("--workers", type=int, default=2, help="serving processes")
    parser.add_argument("--emotion-model", default="lexicon")
    parser.add_argument("--token-delay", type=float, default=0.01)
    parser.add_argument(
        "--max-turn-wait",
        type=float,
        default=None,
        help="HEARTLINE_MAX_TURN_WAIT (default: its own)",
    )
    asyncio.run(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
