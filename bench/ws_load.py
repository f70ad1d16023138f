"""WebSocket load: N concurrent clients x M turns against a Heartline server.

Modes (every address is 127.0.0.1; the servers are started by `_servers`):

* ``--mode embedded`` (default): starts ``heartline serve`` as a subprocess on a
  free port with a temporary data directory, and stops it at the end.
* ``--mode distributed``: starts one ``heartline gateway`` and ``--workers``
  ``heartline worker`` subprocesses on a fresh PostgreSQL database on
  127.0.0.1:5432 (dropped at the end) and a private Mosquitto configured from
  deploy/mosquitto.conf on a free port (``--mqtt-port`` uses a running broker).
* ``--url URL --token TOKEN``: an already running server (all sessions use the token).

Each client connects with ``Authorization: Bearer``, waits for ``ready``, then
sends M ``user_message`` turns one after another, each waiting for its
``reply_end``. Printed: connect-to-ready time of all sessions, throughput,
client TTFT (send -> first ``reply_delta``), the server's ``ttft_ms`` and
per-stage times, and the pipeline overhead ``ttft_ms - emotion - first_token``.
Exits 1 when any session or turn failed or timed out.

    python bench/ws_load.py --sessions 200 --turns 5
    python bench/ws_load.py --sessions 1 --turns 200
    python bench/ws_load.py --mode distributed --sessions 50 --turns 4
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from _servers import HOST, ServerHandle, distributed_servers, embedded_server
from _stats import (
    ProcessUsage,
    machine_summary,
    print_percentile_table,
    process_usage,
    raise_open_file_limit,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

__all__ = ["TurnFailure", "TurnSample", "load", "main", "open_session", "run_turn"]

STAGES = ("queue", "emotion", "publish", "context", "policy", "first_token", "generate")

TEXTS: tuple[str, ...] = (
    "I'm so happy today, my order finally arrived!",
    "This is the third time my package is late. I'm furious.",
    "I feel a bit lost, I don't know how to reset my password.",
    "Thank you so much, you really helped me.",
    "I'm worried my card was charged twice.",
    "Honestly I'm disappointed with the quality.",
    "Can you tell me when the store opens tomorrow?",
    "Wow, that's amazing news, I can't believe it!",
    "我今天特别开心，谢谢你们的帮助！",
    "我的订单又延迟了，我真的很生气。",
    "我有点担心，不知道退款什么时候能到账。",
    "这个产品让我很失望。",
    "请问怎么修改收货地址？",
    "太棒了，问题终于解决了！",
    "I'm scared I lost all my files after the update.",
    "It's fine, just curious how the warranty works.",
)

# Clients


@dataclass(frozen=True, slots=True)
class TurnSample:
    number: int
    client_ttft_ms: float
    client_total_ms: float
    server_ttft_ms: float | None
    stages: dict[str, float]


class TurnFailure(Exception):
    """A turn that did not end with a clean `reply_end`; the message says why."""


@dataclass(slots=True)
class _Gate:
    """Opens when `target` arrivals have been counted."""

    target: int
    arrived: int = 0
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    def arrive(self) -> None:
        self.arrived += 1
        if self.arrived >= self.target:
            self.opened.set()


@dataclass(slots=True)
class LoadRun:
    """Shared state of one run: phases, results, failures, progress counters."""

    sessions: int
    turns: int
    connected: _Gate
    finished: _Gate
    ready_at: list[float] = field(default_factory=list)
    samples: list[TurnSample] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    turns_done: int = 0

    @classmethod
    def new(cls, sessions: int, turns: int) -> LoadRun:
        return cls(sessions, turns, _Gate(sessions), _Gate(sessions))


async def open_session(url: str, token: str, *, deflate: bool = True) -> ClientConnection:
    """A connected, authenticated session that has received `ready`.

    `deflate` offers permessage-deflate, as websockets and browsers do by
    default. No timeout of its own: callers bound it with `asyncio.timeout`.
    """
    headers = {"Authorization": f"Bearer {token}"}
    ws = await connect(
        url,
        additional_headers=headers,
        open_timeout=None,
        ping_interval=None,
        compression="deflate" if deflate else None,
    )
    try:
        message = json.loads(await ws.recv())
        if message.get("type") != "ready":
            raise TurnFailure(f"expected ready, got {message.get('type')}")
    except BaseException:
        await ws.close()
        raise
    return ws


async def run_turn(ws: ClientConnection, number: int, turn_id: str, text: str) -> TurnSample:
    """Send one turn and read until its `reply_end`; raises TurnFailure.

    No timeout of its own: callers bound it with `asyncio.timeout`.
    """
    sent = time.perf_counter()
    first: float | None = None
    await ws.send(json.dumps({"type": "user_message", "id": turn_id, "text": text}))
    while True:
        message: dict[str, Any] = json.loads(await ws.recv())
        kind = message.get("type")
        if message.get("turn_id") not in (turn_id, None):
            continue
        if kind == "reply_delta" and first is None:
            first = time.perf_counter()
        elif kind == "error":
            raise TurnFailure(f"error:{message.get('code')}")
        elif kind == "reply_end":
            break
    ended = time.perf_counter()
    if message.get("interrupted"):
        raise TurnFailure("interrupted")
    return TurnSample(
        number=number,
        client_ttft_ms=((first or ended) - sent) * 1000.0,
        client_total_ms=(ended - sent) * 1000.0,
        server_ttft_ms=message.get("ttft_ms"),
        stages={k: v for k, v in (message.get("stages") or {}).items() if v is not None},
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, TurnFailure):
        return str(exc)
    if isinstance(exc, ConnectionClosed):
        return f"closed:{exc.rcvd.code if exc.rcvd else 'no-close-frame'}"
    return type(exc).__name__


async def client(run: LoadRun, index: int, url: str, token: str, args: argparse.Namespace) -> None:
    """One session: connect, wait for everyone, run the turns, wait for everyone, close."""
    try:
        async with asyncio.timeout(args.connect_timeout):
            ws = await open_session(url, token)
    except (
        OSError,
        TimeoutError,
        ValueError,
        InvalidHandshake,
        ConnectionClosed,
        TurnFailure,
    ) as exc:
        run.failures[f"connect:{_reason(exc)}"] += 1
        run.failures["turn not run (no session)"] += run.turns
        run.connected.arrive()
        run.finished.arrive()
        return
    run.ready_at.append(time.perf_counter())
    run.connected.arrive()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(ws.close)
        await run.connected.opened.wait()
        if args.ramp_s > 0:  # spread the first turns evenly over the ramp
            await asyncio.sleep(args.ramp_s * index / run.sessions)
        await _run_turns(run, index, ws, args)
        run.finished.arrive()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.turn_timeout * run.turns + args.ramp_s + 30):
                await run.finished.opened.wait()


async def _run_turns(
    run: LoadRun, index: int, ws: ClientConnection, args: argparse.Namespace
) -> None:
    for number in range(run.turns):
        text = TEXTS[(index * 7 + number) % len(TEXTS)]
        try:
            async with asyncio.timeout(args.turn_timeout):
                run.samples.append(await run_turn(ws, number, f"t{number}", text))
        except (TimeoutError, ValueError, TurnFailure, ConnectionClosed) as exc:
            run.failures[_reason(exc)] += 1
            if isinstance(exc, ConnectionClosed):
                run.failures["turn not run (session closed)"] += run.turns - number - 1
                return
        run.turns_done += 1
        if args.think_ms > 0:
            await asyncio.sleep(args.think_ms / 1000.0)


async def _progress(run: LoadRun, started: float, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        failed = sum(run.failures.values())
        print(
            f"[{time.perf_counter() - started:6.1f} s] ready {len(run.ready_at)}/{run.sessions}"
            f"  turns {run.turns_done}/{run.sessions * run.turns}  failed {failed}",
            file=sys.stderr,
            flush=True,
        )


@dataclass(frozen=True, slots=True)
class Timing:
    connect_s: float
    turns_s: float
    # The server's processes over the turn phase (None for --url: their pids are unknown)
    server_cpu_s: float | None = None
    server_rss: int | None = None


async def _warm_up(handle: ServerHandle, args: argparse.Namespace) -> None:
    """A few unrecorded turns on one session, so that start-up costs are not measured."""
    if args.warmup <= 0:
        return
    async with asyncio.timeout(args.connect_timeout):
        ws = await open_session(handle.url, handle.token_for(args.sessions))
    try:
        for number in range(args.warmup):
            async with asyncio.timeout(args.turn_timeout):
                await run_turn(ws, number, f"w{number}", TEXTS[number % len(TEXTS)])
    finally:
        await ws.close()


async def load(handle: ServerHandle, args: argparse.Namespace) -> tuple[LoadRun, Timing]:
    """Connect every session, then run every session's turns; bounded by the timeouts."""
    await _warm_up(handle, args)
    run = LoadRun.new(args.sessions, args.turns)
    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        reporter = group.create_task(_progress(run, started, args.progress_every))
        for index in range(args.sessions):
            group.create_task(client(run, index, handle.url, handle.token_for(index), args))
        await run.connected.opened.wait()
        connected = time.perf_counter()
        before = _usage(handle)
        await run.finished.opened.wait()
        finished = time.perf_counter()
        after = _usage(handle)
        reporter.cancel()
    last_ready = max(run.ready_at, default=connected)
    timing = Timing(connect_s=last_ready - started, turns_s=finished - connected)
    if before is not None and after is not None:
        timing = Timing(
            connect_s=timing.connect_s,
            turns_s=timing.turns_s,
            server_cpu_s=after.cpu_s - before.cpu_s,
            server_rss=after.rss,
        )
    return run, timing


def _usage(handle: ServerHandle) -> ProcessUsage | None:
    return process_usage(handle.pids.values()) if handle.pids else None


# Report


def _column(
    samples: Sequence[TurnSample], pick: Callable[[TurnSample], float | None]
) -> list[float]:
    return [value for sample in samples if (value := pick(sample)) is not None]


def _overhead(sample: TurnSample) -> float | None:
    """Server TTFT minus recognizer and generator time: queue + publish + context + policy."""
    if sample.server_ttft_ms is None:
        return None
    emotion = sample.stages.get("emotion")
    first = sample.stages.get("first_token")
    if emotion is None or first is None:
        return None
    return sample.server_ttft_ms - emotion - first


def report(run: LoadRun, timing: Timing, *, label: str, settings: str) -> None:
    samples = run.samples
    first = [sample for sample in samples if sample.number == 0]
    later = [sample for sample in samples if sample.number > 0]
    total = run.sessions * run.turns
    print(f"\nws_load: {label}")
    print(f"machine: {machine_summary()}")
    print(f"settings: {settings}")
    print(f"sessions {run.sessions}, turns per session {run.turns}")
    print(f"turns answered {len(samples)}/{total}")
    print(f"connect + ready, all {len(run.ready_at)} sessions: {timing.connect_s * 1000:.0f} ms")
    rate = len(samples) / timing.turns_s if timing.turns_s > 0 else float("nan")
    print(f"turn phase wall time: {timing.turns_s:.2f} s, {rate:.1f} turns/s")
    if timing.server_cpu_s is not None and timing.server_rss is not None and samples:
        busy = timing.server_cpu_s / timing.turns_s * 100.0
        per_turn = timing.server_cpu_s / len(samples) * 1000.0
        rss_mib = timing.server_rss / 2**20
        print(
            f"server CPU over the turn phase: {timing.server_cpu_s:.2f} s ({busy:.0f} % of one"
            f" core), {per_turn:.2f} ms per turn; RSS at the end {rss_mib:.0f} MiB"
        )
    print_percentile_table(
        "latency",
        [
            ("client TTFT (send -> 1st delta)", _column(samples, lambda s: s.client_ttft_ms)),
            ("client total (send -> reply_end)", _column(samples, lambda s: s.client_total_ms)),
            ("server ttft_ms", _column(samples, lambda s: s.server_ttft_ms)),
            ("pipeline overhead", _column(samples, _overhead)),
            ("pipeline overhead, turns 2..M", _column(later, _overhead)),
            ("context, turn 1 (history wait)", _column(first, _stage("context"))),
            ("client TTFT - server ttft_ms", _column(samples, _transport)),
        ],
    )
    print_percentile_table(
        "server stages (reply_end.stages)",
        [(name, _column(samples, _stage(name))) for name in STAGES],
    )
    print(
        "\npipeline overhead = server ttft_ms - emotion - first_token"
        " (= queue + publish + context + policy)"
    )
    if run.failures:
        print(f"\nFAILED: {sum(run.failures.values())} turns or sessions")
        for reason, count in run.failures.most_common():
            print(f"  {reason}: {count}")
    else:
        print("\nno failures")


def _stage(name: str) -> Callable[[TurnSample], float | None]:
    return lambda sample: sample.stages.get(name)


def _transport(sample: TurnSample) -> float | None:
    if sample.server_ttft_ms is None:
        return None
    return sample.client_ttft_ms - sample.server_ttft_ms


# Command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="N concurrent WebSocket clients x M turns against a Heartline server.",
        epilog="Every server started here listens on 127.0.0.1 and is stopped at the end.",
    )
    parser.add_argument("--mode", choices=["embedded", "distributed"], default="embedded")
    parser.add_argument("--url", help="load this running server instead (needs --token)")
    parser.add_argument("--token", help="token for --url; every session uses it")
    parser.add_argument("--sessions", type=int, default=200, help="concurrent sessions (200)")
    parser.add_argument("--turns", type=int, default=5, help="turns per session (5)")
    parser.add_argument("--workers", type=int, default=2, help="distributed: workers (2)")
    parser.add_argument("--warmup", type=int, default=3, help="unrecorded warm-up turns (3)")
    parser.add_argument(
        "--ramp-s",
        type=float,
        default=0.0,
        help="spread the sessions' first turns over this many seconds (0: all at once)",
    )
    parser.add_argument("--think-ms", type=float, default=0.0, help="pause between turns (0)")
    parser.add_argument(
        "--emotion-model",
        default="lexicon",
        help="the servers' emotion model (lexicon: measure the pipeline around it; "
        "auto: the shipped models)",
    )
    parser.add_argument(
        "--server-rate",
        type=float,
        default=1000.0,
        help="per-connection message rate and burst given to started servers (1000/s); "
        "the default 10/s, burst 20 refuses back-to-back turns of one client",
    )
    parser.add_argument("--connect-timeout", type=float, default=30.0, help="seconds (30)")
    parser.add_argument("--turn-timeout", type=float, default=30.0, help="seconds per turn (30)")
    parser.add_argument("--progress-every", type=float, default=5.0, help="seconds (5)")
    parser.add_argument(
        "--parallel-start",
        action="store_true",
        help="distributed: start the workers at once instead of one after another",
    )
    parser.add_argument("--pg-user", default="postgres", help="distributed: PostgreSQL user")
    parser.add_argument("--pg-admin-db", default="test", help="distributed: db to connect to")
    parser.add_argument(
        "--mqtt-host",
        default=HOST,
        help="distributed: host of a running broker, with --mqtt-port (127.0.0.1)",
    )
    parser.add_argument(
        "--mqtt-port",
        type=int,
        help="distributed: use the running broker on this port instead of starting a "
        "private Mosquitto from deploy/mosquitto.conf",
    )
    return parser


@contextlib.asynccontextmanager
async def _target(args: argparse.Namespace) -> AsyncIterator[tuple[ServerHandle, str]]:
    if args.url:
        yield ServerHandle(url=args.url, token_for=lambda _: args.token), f"server {args.url}"
    elif args.mode == "distributed":
        async with distributed_servers(
            workers=args.workers,
            rate=args.server_rate,
            pg_user=args.pg_user,
            pg_admin_db=args.pg_admin_db,
            mqtt=None if args.mqtt_port is None else (args.mqtt_host, args.mqtt_port),
            parallel_start=args.parallel_start,
            emotion_model=args.emotion_model,
        ) as handle:
            label = f"distributed: 1 gateway + {args.workers} workers, MQTT + PostgreSQL"
            yield handle, f"{label}\nbroker: {handle.broker}\nemotion model: {args.emotion_model}"
    else:
        async with embedded_server(
            rate=args.server_rate, emotion_model=args.emotion_model
        ) as handle:
            label = "embedded: heartline serve (in-process bus, SQLite, template generator)"
            yield handle, f"{label}\nemotion model: {args.emotion_model}"


async def _main(args: argparse.Namespace) -> int:
    async with _target(args) as (handle, label):
        run, timing = await load(handle, args)
    settings = (
        f"warm-up {args.warmup} turns, ramp {args.ramp_s:g} s, think {args.think_ms:g} ms, "
        f"turn timeout {args.turn_timeout:g} s"
    )
    if not args.url:
        settings += f", server message rate/burst {args.server_rate:g}"
    report(run, timing, label=label, settings=settings)
    return 1 if run.failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.url and not args.token:
        _parser().error("--url needs --token")
    if args.sessions < 1 or args.turns < 1:
        _parser().error("--sessions and --turns must be at least 1")
    raise_open_file_limit(args.sessions * 2 + 256)
    try:
        return asyncio.run(_main(args))
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"ws_load: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
