"""Memory per idle session: RSS of `heartline serve` at rest and with K idle sessions.

Starts ``heartline serve`` as a subprocess on 127.0.0.1 (free port, temporary
data directory, log level warning, `--workers` serving processes), reads the RSS of
its every process with psutil, opens K authenticated WebSocket sessions that each
wait for ``ready`` and then stay idle, reads the RSS again, and prints both, each
process's share and the per-session difference. The clients run in this process,
so their memory is not counted.

    python bench/idle_sessions.py --sessions 1000
    python bench/idle_sessions.py --sessions 1000 --workers 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence

import psutil
from _servers import ServerHandle, embedded_server
from _stats import machine_summary, percentile, process_usage, raise_open_file_limit
from websockets.asyncio.client import ClientConnection
from ws_load import open_session

__all__ = ["main"]


def _each_rss(pid: int) -> list[int]:
    """RSS of the server's process and of each of its descendants, largest first."""
    root = psutil.Process(pid)
    sizes = []
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            sizes.append(int(process.memory_info().rss))
    return sorted(sizes, reverse=True)


async def _settled_rss(pid: int, *, settle_s: float) -> int:
    """RSS of every process after `settle_s` seconds of quiet (pending work finished)."""
    await asyncio.sleep(settle_s)
    return process_usage([pid]).rss


async def _open_one(
    handle: ServerHandle, index: int, limit_s: float, *, deflate: bool
) -> tuple[ClientConnection, float]:
    async with asyncio.timeout(limit_s):
        ws = await open_session(handle.url, handle.token_for(index), deflate=deflate)
    return ws, time.perf_counter()


async def _open_all(
    handle: ServerHandle, count: int, *, batch: int, limit_s: float, deflate: bool
) -> tuple[list[ClientConnection], list[float], int]:
    """Open `count` sessions, `batch` handshakes at a time; sessions, ready times, failures."""
    sessions: list[ClientConnection] = []
    ready_at: list[float] = []
    failures = 0
    for start in range(0, count, batch):
        opened = await asyncio.gather(
            *(
                _open_one(handle, i, limit_s, deflate=deflate)
                for i in range(start, min(start + batch, count))
            ),
            return_exceptions=True,
        )
        for result in opened:
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                failures += 1
                continue
            sessions.append(result[0])
            ready_at.append(result[1])
        print(f"  {len(sessions)}/{count} sessions ready", file=sys.stderr, flush=True)
    return sessions, ready_at, failures


async def _close_all(sessions: list[ClientConnection]) -> None:
    for start in range(0, len(sessions), 200):
        chunk = sessions[start : start + 200]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await asyncio.gather(*(ws.close() for ws in chunk), return_exceptions=True)


async def _main(args: argparse.Namespace) -> int:
    env = {"HEARTLINE_WORKERS": str(args.workers)} if args.workers else None
    async with embedded_server(rate=10.0, emotion_model=args.emotion_model, env=env) as handle:
        pid = handle.pids["serve"]
        # One session open and closed first, so per-connection imports and caches are warm.
        warm, _ = await _open_one(handle, args.sessions, args.connect_timeout, deflate=args.deflate)
        await warm.close()
        at_rest = await _settled_rss(pid, settle_s=args.settle_s)
        each_at_rest = _each_rss(pid)
        started = time.perf_counter()
        sessions, ready_at, failures = await _open_all(
            handle,
            args.sessions,
            batch=args.batch,
            limit_s=args.connect_timeout,
            deflate=args.deflate,
        )
        all_ready_s = max(ready_at, default=started) - started
        with_sessions = await _settled_rss(pid, settle_s=args.settle_s)
        await _close_all(sessions)
    _report(
        args, at_rest, each_at_rest, with_sessions, len(sessions), all_ready_s, ready_at, started
    )
    if failures:
        print(f"FAILED: {failures} sessions did not get ready")
        return 1
    return 0


def _report(
    args: argparse.Namespace,
    at_rest: int,
    each_at_rest: list[int],
    with_sessions: int,
    opened: int,
    all_ready_s: float,
    ready_at: list[float],
    started: float,
) -> None:
    kib = 1024
    delta = (with_sessions - at_rest) / opened / kib if opened else float("nan")
    since_start = [(t - started) * 1000.0 for t in ready_at]
    print("\nidle_sessions: heartline serve (embedded)")
    print(f"machine: {machine_summary()}")
    compression = "permessage-deflate" if args.deflate else "no compression"
    print(f"sessions opened: {opened}/{args.sessions} ({args.batch} handshakes at a time)")
    print(f"clients offered: {compression}")
    print(f"emotion model: {args.emotion_model}; serving processes: {args.workers or 'default'}")
    print(f"RSS at rest:             {at_rest / kib / kib:8.1f} MiB")
    shares = ", ".join(f"{size / kib / kib:.0f}" for size in each_at_rest)
    print(f"  each process (MiB):    {shares}")
    print(f"RSS with {opened:>5} sessions: {with_sessions / kib / kib:8.1f} MiB")
    print(f"per idle session:        {delta:8.1f} KiB")
    print(f"all {opened} ready in:       {all_ready_s * 1000:8.0f} ms")
    if since_start:
        print(f"half of them ready by:   {percentile(since_start, 50):8.0f} ms")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="RSS of `heartline serve` at rest and with K idle WebSocket sessions.",
        epilog="The server listens on 127.0.0.1 and is stopped at the end.",
    )
    parser.add_argument("--sessions", type=int, default=1000, help="idle sessions K (1000)")
    parser.add_argument(
        "--batch", type=int, default=1000, help="handshakes in flight at once (1000)"
    )
    parser.add_argument(
        "--no-deflate",
        dest="deflate",
        action="store_false",
        help="do not offer permessage-deflate (offered by default, as browsers do)",
    )
    parser.add_argument(
        "--workers", type=int, help="serving processes (default: the server's own, one per core)"
    )
    parser.add_argument("--emotion-model", default="auto", help="default auto (the shipped models)")
    parser.add_argument("--settle-s", type=float, default=2.0, help="quiet before RSS (2 s)")
    parser.add_argument("--connect-timeout", type=float, default=60.0, help="seconds (60)")
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.batch < 1:
        parser.error("--sessions and --batch must be at least 1")
    raise_open_file_limit(args.sessions * 2 + 256)
    try:
        return asyncio.run(_main(args))
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"idle_sessions: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
