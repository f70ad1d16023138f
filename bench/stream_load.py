"""Streaming load: an LLM's stream through Heartline against the same stream taken directly.

One run starts a vLLM-shaped upstream in its own process (bench/fake_upstream.py: vLLM's
event stream byte for byte, `--tokens` tokens, the first after `--first-token-ms`, then
one every `--token-ms`) and Heartline pointed at it (`--generator vllm`, the shipped
emotion models unless `--emotion-model`). For each N of `--sessions`:

* **floor**: N aiohttp clients stream `POST /v1/chat/completions` from the upstream
  directly, closed loop, `--turns` each: what any client of that LLM gets;
* **relay**: the ws phase's clients against bench/bare_relay.py, a relay that passes the
  upstream's tokens on as frames with nothing between: the CPU any Python server pays
  here for the same sockets and frames;
* **ws**: N WebSocket sessions send `--turns` turns each, the next when `reply_end`
  arrives (bench/ws_load.py's clients);
* **openai**: N aiohttp clients stream Heartline's `/v1/chat/completions`, closed loop
  (`--surface`).

Printed per phase: TTFT p50/p95/p99 (send to first text), turns/s, the server's CPU
milliseconds per turn (user + system, summed over every process of the server), its RSS,
and each against the floor; how the whole machine's CPU was shared over the phase (the
server, this load generator, the upstream and the rest: broker, database, anything else)
and how many of its cores were busy, since all of them share one machine; for ws, the
medians of the server's own stage timings (`reply_end.stages`: emotion, first_token,
...), and in the distributed set-up the CPU of each process (gateway, workers).
`--generator templates` runs the template replies paced by `--token-delay` instead (the
upstream still runs, for the floor). Exit status 1 when any turn failed.

    .venv/bin/python bench/stream_load.py
    .venv/bin/python bench/stream_load.py --sessions 50 --emotion-model lexicon
    .venv/bin/python bench/stream_load.py --mode distributed --sessions 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
from _servers import ServerHandle, distributed_servers, embedded_server
from _stats import (
    MachineShare,
    cpu_snapshot,
    format_machine_share,
    format_ms,
    machine_share,
    machine_summary,
    percentile,
    process_usage,
    raise_open_file_limit,
)
from bare_relay import sse_texts
from ws_load import TEXTS
from ws_load import load as ws_turns

from agent.emotion.precision import PRECISIONS

_HERE = Path(__file__).resolve().parent
UPSTREAM_MODEL = "bench-model"


@dataclass(slots=True)
class Phase:
    """One phase's results: client-side turn samples, failures, the server's usage."""

    name: str
    sessions: int
    ttft_ms: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    turns_s: float = 0.0
    server_cpu_s: float | None = None
    server_rss: int | None = None
    stages_ms: dict[str, list[float]] = field(default_factory=dict)
    """The server's own timings of each turn (`reply_end.stages`, ws only)."""
    cpu_by_role: dict[str, float] = field(default_factory=dict)
    """CPU seconds of each of the server's processes (and its children), by role."""
    machine: MachineShare | None = None

    @property
    def turns(self) -> int:
        return len(self.ttft_ms)

    @property
    def rate(self) -> float:
        return self.turns / self.turns_s if self.turns_s else 0.0


async def _on_machine(parts: dict[str, list[int]], work: Awaitable[Phase]) -> Phase:
    """`work`'s phase, with how the machine's CPU was shared while it ran."""
    before = cpu_snapshot(parts)
    phase = await work
    phase.machine = machine_share(before, cpu_snapshot(parts))
    return phase


# The upstream


@contextlib.asynccontextmanager
async def upstream(args: argparse.Namespace) -> AsyncIterator[tuple[str, int]]:
    """bench/fake_upstream.py in its own process: its base URL and pid."""
    argv = ["--tokens", str(args.tokens), "--first-token-ms", str(args.first_token_ms)]
    argv += ["--token-ms", str(args.token_ms)]
    async with _announcing("fake_upstream.py", argv) as started:
        yield started


@contextlib.asynccontextmanager
async def bare_relay(base_url: str) -> AsyncIterator[ServerHandle]:
    """bench/bare_relay.py in front of the upstream, as a server to load."""
    async with _announcing("bare_relay.py", ["--upstream", f"{base_url}/v1"]) as (url, pid):
        yield ServerHandle(url=url, token_for=lambda _: "", pids={"relay": pid})


@contextlib.asynccontextmanager
async def _announcing(script: str, argv: list[str]) -> AsyncIterator[tuple[str, int]]:
    """A script of bench/ in its own process: the URL it says it listens on, and its pid."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(_HERE / script), *argv, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            line = (await process.stdout.readline()).decode()
        if not line.startswith("listening on "):
            raise RuntimeError(f"{script} did not start: {line!r}")
        yield line.removeprefix("listening on ").strip(), process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


# Streaming clients (one aiohttp session for all, as a load generator would)


async def first_text_of_stream(response: aiohttp.ClientResponse) -> float | None:
    """Read an OpenAI event stream to its end; the perf_counter of its first non-empty text."""
    first: float | None = None
    async for _text in sse_texts(response):
        if first is None:
            first = time.perf_counter()
    return first


async def stream_turns(
    phase: Phase,
    http: aiohttp.ClientSession,
    url: str,
    body_for: Callable[[int, int], dict[str, object]],
    headers_for: Callable[[int], dict[str, str]],
    index: int,
    args: argparse.Namespace,
) -> None:
    """One client's closed loop of streamed chat completions."""
    for number in range(args.turns):
        sent = time.perf_counter()
        try:
            async with (
                asyncio.timeout(args.turn_timeout),
                http.post(
                    url, json=body_for(index, number), headers=headers_for(index)
                ) as response,
            ):
                if response.status != 200:
                    phase.failures[f"HTTP {response.status}"] += 1
                    continue
                first = await first_text_of_stream(response)
        except (TimeoutError, aiohttp.ClientError) as exc:
            phase.failures[type(exc).__name__] += 1
            continue
        if first is None:
            phase.failures["no text"] += 1
            continue
        phase.ttft_ms.append((first - sent) * 1000.0)


def _text(index: int, number: int) -> str:
    return TEXTS[(index * 7 + number) % len(TEXTS)]


async def floor_phase(base_url: str, sessions: int, args: argparse.Namespace) -> Phase:
    """N clients streaming the upstream directly."""
    phase = Phase("floor", sessions)

    def body(index: int, number: int) -> dict[str, object]:
        messages = [{"role": "user", "content": _text(index, number)}]
        return {"model": UPSTREAM_MODEL, "messages": messages, "stream": True}

    async with _client(sessions) as http:
        started = time.perf_counter()
        await asyncio.gather(
            *(
                stream_turns(
                    phase, http, f"{base_url}/v1/chat/completions", body, _no_auth, i, args
                )
                for i in range(sessions)
            )
        )
        phase.turns_s = time.perf_counter() - started
    return phase


async def openai_phase(handle: ServerHandle, sessions: int, args: argparse.Namespace) -> Phase:
    """N clients streaming Heartline's OpenAI-compatible endpoint, a user each."""
    phase = Phase("openai", sessions)
    root = handle.url.removesuffix("/ws")
    url = f"{root.replace('ws://', 'http://', 1)}/v1/chat/completions"

    def body(index: int, number: int) -> dict[str, object]:
        messages = [{"role": "user", "content": _text(index, number)}]
        return {"model": "heartline", "messages": messages, "stream": True}

    def headers(index: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {handle.token_for(index)}"}

    async with _client(sessions) as http:
        await _measured(
            phase,
            handle,
            asyncio.gather(
                *(stream_turns(phase, http, url, body, headers, i, args) for i in range(sessions))
            ),
        )
    return phase


async def ws_phase(
    handle: ServerHandle, sessions: int, args: argparse.Namespace, *, name: str = "ws"
) -> Phase:
    """N WebSocket sessions (bench/ws_load.py's clients and timing)."""
    phase = Phase(name, sessions)
    load_args = argparse.Namespace(
        sessions=sessions,
        turns=args.turns,
        connect_timeout=args.turn_timeout,
        turn_timeout=args.turn_timeout,
        ramp_s=0.0,
        think_ms=0.0,
        warmup=0,
        progress_every=3600.0,
    )
    before = _cpu_by_role(handle)
    run, timing = await ws_turns(handle, load_args)
    after = _cpu_by_role(handle)
    phase.cpu_by_role = {role: after[role] - before[role] for role in after}
    phase.ttft_ms = [sample.client_ttft_ms for sample in run.samples]
    phase.failures = run.failures
    phase.turns_s = timing.turns_s
    phase.server_cpu_s = timing.server_cpu_s
    phase.server_rss = timing.server_rss
    for sample in run.samples:
        for stage, millis in sample.stages.items():
            phase.stages_ms.setdefault(stage, []).append(millis)
    return phase


async def _measured(phase: Phase, handle: ServerHandle, work: Awaitable[object]) -> None:
    before, by_role = process_usage(handle.pids.values()), _cpu_by_role(handle)
    started = time.perf_counter()
    await work
    phase.turns_s = time.perf_counter() - started
    after = process_usage(handle.pids.values())
    phase.server_cpu_s = after.cpu_s - before.cpu_s
    phase.server_rss = after.rss
    phase.cpu_by_role = {role: cpu - by_role[role] for role, cpu in _cpu_by_role(handle).items()}


def _cpu_by_role(handle: ServerHandle) -> dict[str, float]:
    return {role: process_usage([pid]).cpu_s for role, pid in handle.pids.items()}


def _no_auth(index: int) -> dict[str, str]:
    return {}


@contextlib.asynccontextmanager
async def _client(sessions: int) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=sessions + 10, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as http:
        yield http


async def _warm_up(handle: ServerHandle, args: argparse.Namespace) -> None:
    """A few unrecorded streamed turns, so that start-up costs are not measured."""
    await ws_phase(handle, 2, argparse.Namespace(**{**vars(args), "turns": 3}))


# The server


def _server_env(base_url: str, args: argparse.Namespace) -> dict[str, str]:
    env = {
        "HEARTLINE_GENERATOR": args.generator,
        "HEARTLINE_EMOTION_DOMAIN": args.emotion_domain,
        "HEARTLINE_EMOTION_PRECISION": args.emotion_precision,
    }
    if args.generator == "vllm":
        env |= {"HEARTLINE_VLLM_URL": f"{base_url}/v1", "HEARTLINE_MODEL": UPSTREAM_MODEL}
    else:
        env["HEARTLINE_TOKEN_DELAY"] = str(args.token_delay)
    return env


@contextlib.asynccontextmanager
async def heartline(base_url: str, args: argparse.Namespace) -> AsyncIterator[ServerHandle]:
    env = _server_env(base_url, args)
    rate = 1000.0  # a closed loop sends turns back to back
    if args.mode == "distributed":
        servers = distributed_servers(
            workers=args.workers,
            rate=rate,
            pg_user=args.pg_user,
            pg_admin_db=args.pg_admin_db,
            emotion_model=args.emotion_model,
            env=env,
        )
    else:
        if args.workers:
            env["HEARTLINE_WORKERS"] = str(args.workers)
        servers = embedded_server(rate=rate, emotion_model=args.emotion_model, env=env)
    async with servers as handle:
        yield handle


def _idle_rss(handle: ServerHandle) -> list[tuple[str, int]]:
    """Each serving process's resident memory, by name."""
    rows: list[tuple[str, int]] = []
    for name, pid in handle.pids.items():
        root = psutil.Process(pid)
        for index, process in enumerate([root, *root.children(recursive=True)]):
            label = name if index == 0 else f"{name} child {index}"
            rows.append((label, process.memory_info().rss))
    return rows


# Report


def report(phases: Sequence[Phase], turns: int) -> None:
    floor = next(phase for phase in phases if phase.name == "floor")
    heads = ("p50", "p95", "p99")
    print(f"\nN = {floor.sessions} sessions x {turns} turns (TTFT and +floor in ms)")
    print(
        f"  {'':<8}{'turns':>7}{'failed':>8}"
        + "".join(f"{'TTFT ' + h:>11}" for h in heads)
        + f"{'+p50':>9}{'+p99':>9}{'turns/s':>9}{'x floor':>9}{'CPU ms/turn':>13}{'RSS MiB':>9}"
    )
    for phase in phases:
        ttft = [percentile(phase.ttft_ms, q) for q in (50, 95, 99)]
        floor_p50 = percentile(floor.ttft_ms, 50)
        floor_p99 = percentile(floor.ttft_ms, 99)
        cpu = (
            f"{phase.server_cpu_s * 1000.0 / phase.turns:.2f}"
            if phase.server_cpu_s is not None and phase.turns
            else "-"
        )
        rss = f"{phase.server_rss / 2**20:.0f}" if phase.server_rss is not None else "-"
        ratio = phase.rate / floor.rate if floor.rate else 0.0
        print(
            f"  {phase.name:<8}{phase.turns:>7}{sum(phase.failures.values()):>8}"
            + "".join(f"{format_ms(value):>11}" for value in ttft)
            + f"{format_ms(ttft[0] - floor_p50):>9}{format_ms(ttft[2] - floor_p99):>9}"
            + f"{phase.rate:>9.1f}{ratio:>9.2f}{cpu:>13}{rss:>9}"
        )
        for reason, count in phase.failures.most_common():
            print(f"      failed: {reason} x {count}")
        if len(phase.cpu_by_role) > 1 and phase.turns:
            roles = ", ".join(
                f"{role} {cpu * 1000.0 / phase.turns:.2f}"
                for role, cpu in phase.cpu_by_role.items()
            )
            print(f"      server CPU ms/turn by process, connecting included: {roles}")
        if phase.machine is not None and phase.turns:
            print(f"      {format_machine_share(phase.machine, phase.turns)}")
        if phase.stages_ms:
            stages = ", ".join(
                f"{stage} {percentile(values, 50):.1f}" for stage, values in phase.stages_ms.items()
            )
            print(f"      server stages p50 (ms): {stages}")


async def run(args: argparse.Namespace) -> int:
    print(machine_summary())
    print(
        f"upstream: {args.tokens} tokens, first after {args.first_token_ms:g} ms, then every"
        f" {args.token_ms:g} ms; Heartline: --generator {args.generator}, emotion model"
        f" {args.emotion_model} ({args.emotion_precision}), {args.mode}"
        + (f", {args.workers} worker processes" if args.workers else "")
    )
    failed = 0
    async with (
        upstream(args) as (base_url, upstream_pid),
        bare_relay(base_url) as relay,
        heartline(base_url, args) as handle,
    ):
        await _warm_up(handle, args)
        await _warm_up(relay, args)
        for name, rss in _idle_rss(handle):
            print(f"idle RSS {name}: {rss / 2**20:.0f} MiB")
        parts = {"server": list(handle.pids.values()), "upstream": [upstream_pid]}
        relay_parts = {**parts, "relay": list(relay.pids.values())}
        for sessions in args.sessions:
            phases = [await _on_machine(parts, floor_phase(base_url, sessions, args))]
            relay_phase = ws_phase(relay, sessions, args, name="relay")
            phases.append(await _on_machine(relay_parts, relay_phase))
            if "ws" in args.surface:
                phases.append(await _on_machine(parts, ws_phase(handle, sessions, args)))
            if "openai" in args.surface:
                phases.append(await _on_machine(parts, openai_phase(handle, sessions, args)))
            report(phases, args.turns)
            failed += sum(sum(phase.failures.values()) for phase in phases)
    return 1 if failed else 0


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=_sizes, default=[50, 200], help="N, comma-separated")
    parser.add_argument("--turns", type=int, default=10, help="turns per session (default 10)")
    parser.add_argument("--surface", default="ws,openai", help="ws, openai or both (default)")
    parser.add_argument("--mode", choices=("embedded", "distributed"), default="embedded")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="embedded: serving processes (default: the server's own default);"
        " distributed: worker processes (default 2)",
    )
    parser.add_argument("--emotion-model", default="auto", help="default auto (the shipped models)")
    parser.add_argument(
        "--emotion-domain",
        choices=("support", "general"),
        default="support",
        help="default support",
    )
    parser.add_argument(
        "--emotion-precision", choices=PRECISIONS, default="auto", help="default auto"
    )
    parser.add_argument("--generator", choices=("vllm", "templates"), default="vllm")
    parser.add_argument("--token-delay", type=float, default=0.01, help="templates' pacing (s)")
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--first-token-ms", type=float, default=50.0)
    parser.add_argument("--token-ms", type=float, default=10.0)
    parser.add_argument("--turn-timeout", type=float, default=60.0)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--pg-admin-db", default="test")
    args = parser.parse_args(argv)
    if args.mode == "distributed" and not args.workers:
        args.workers = 2
    raise_open_file_limit(4 * max(args.sessions) + 256)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
