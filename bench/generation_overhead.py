"""Generator overhead: TTFT through Heartline minus the upstream server's own TTFT, in one run.

Starts the tests' fake vLLM server (tests/support/fake_vllm.py, vLLM's server-sent events
byte for byte) answering every request with a reply of `--tokens` tokens, the first after
`--first-token-ms` and each next one `--token-ms` later, and Heartline in this process
(`embedded`, `generator="vllm"` pointed at the fake, emotion model `lexicon` or
`--emotion-model`, output guard pace `--guard-release`). Then, alternating, `--pairs`
times each:

(a) upstream, measured directly: an aiohttp streaming POST /v1/chat/completions with the
    prompt Heartline would build for the turn; the time to the first content delta, and
    (a') to the delta after which an output guard of the same pace, fed the same deltas,
    first lets text go: the first complete word, or the first complete sentence;
(b) through Heartline: a `user_message` over the WebSocket; the time from sending it to
    the first `reply_delta`, with `reply_end`'s `ttft_ms` and stage times.

Printed: both TTFTs side by side (p50/p95/p99), the overhead b - a at each percentile and
per pair, and where it goes, per pair: the guard holding the first text back, the
WebSocket, gateway and bus outside the worker, the pipeline stages before the generator
(queue, emotion, publish, context, policy), and the generator chain itself (prompt
building, HTTP client, SSE parsing, fallback and guard code); prompt building
(`PromptBuilder.messages`) is also timed on its own. Turns run in sessions of
`--session-turns`; each session is a new connection of a new user. The fake server, the
clients and Heartline share one event loop, one request at a time.

    .venv/bin/python bench/generation_overhead.py
    .venv/bin/python bench/generation_overhead.py --pairs 500 --emotion-model auto
    .venv/bin/python bench/generation_overhead.py --first-token-ms 200 --token-ms 20
    .venv/bin/python bench/generation_overhead.py --guard-release sentence
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from _stats import QUANTILES, format_ms, machine_summary, percentile, print_percentile_table
from websockets.asyncio.client import ClientConnection, connect

from agent.app import Running, embedded
from agent.config import load_settings
from agent.generation.base import GenerationRequest
from agent.generation.guard import OutputGuard
from agent.generation.prompts import PromptBuilder, PromptSettings
from agent.logging import configure_logging
from agent.values import Action, Decision, EmotionReading, Exchange, HistorySummary, Strategy, Tone

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))  # for tests.support, which is not installed
from tests.support.fake_vllm import FakeVllm, Script  # noqa: E402

MODEL = "bench-model"
CONTEXT_TURNS = 10  # agent.dialogue.manager's default `context_turns`
PRE_GENERATOR = ("queue", "emotion", "publish", "context", "policy")
# A reply whose first sentence ends after six tokens, as a chat model's often does.
REPLY = (
    "I'm", " sorry", " to", " hear", " that", ".", " Let", " me", " check", " your",
    " order", " right", " away", ".", " It", " should", " be", " with", " you", " soon",
    ".", " Is", " there", " anything", " else", " I", " can", " do", "?",
)  # fmt: skip
TEXTS = (
    "My order is late again and nobody answers the phone.",
    "Can you tell me when the store opens tomorrow?",
    "I'm worried my card was charged twice.",
    "Thank you so much, you really helped me.",
    "I feel a bit lost, I don't know how to reset my password.",
    "Honestly I'm disappointed with the quality.",
    "我的订单又延迟了，我真的很生气。",
    "请问怎么修改收货地址？",
)
_NEUTRAL = EmotionReading(
    scores={"neutral": 1.0}, dominant="neutral", valence=0.0, arousal=0.0, intensity=0.0,
    model="bench",
)  # fmt: skip
_DECISION = Decision(
    action=Action.REPLY, strategy=Strategy.EMPATHIZE, tone=Tone.WARM, confidence=0.8,
    policy="bench",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Upstream:
    """One direct request: milliseconds to the first content delta and to the guard's first text."""

    first_ms: float
    released_ms: float  # when an output guard would first let text go
    prompt_ms: float  # building its messages, before the request (not in the two above)


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn through Heartline, as the client and `reply_end` saw it."""

    client_ms: float
    ttft_ms: float
    stages: dict[str, float]
    generator: str


# Measuring


async def upstream_request(
    client: aiohttp.ClientSession,
    url: str,
    builder: PromptBuilder,
    guard: OutputGuard,
    request: GenerationRequest,
) -> Upstream:
    """The prompt Heartline would send, straight to the server; read to the end."""
    started = time.perf_counter()
    messages = builder.messages(request)
    prompt_ms = (time.perf_counter() - started) * 1000
    body = {
        "model": MODEL,
        "messages": messages,
        "max_completion_tokens": 256,
        "temperature": 0.7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    reply = guard.filter(request.language)
    first = released = math.nan
    started = time.perf_counter()
    async with client.post(url, json=body) as response:
        response.raise_for_status()
        async for raw in response.content:  # line by line
            line = raw.decode().rstrip("\r\n")
            if not line.startswith("data: {") or not math.isnan(released):
                continue
            choices = json.loads(line.removeprefix("data: "))["choices"]
            text = choices[0]["delta"].get("content") if choices else None
            if not text:
                continue
            now = (time.perf_counter() - started) * 1000
            if math.isnan(first):
                first = now
            if reply.feed(text):
                released = now
    return Upstream(first_ms=first, released_ms=released, prompt_ms=prompt_ms)


async def heartline_turn(ws: ClientConnection, turn_id: str, text: str) -> Turn:
    """One `user_message`; the time to its first `reply_delta`, and its `reply_end`."""
    started = time.perf_counter()
    await ws.send(json.dumps({"type": "user_message", "id": turn_id, "text": text}))
    first = math.nan
    while True:
        message = json.loads(await ws.recv())
        kind = message["type"]
        if kind == "reply_delta" and math.isnan(first):
            first = (time.perf_counter() - started) * 1000
        elif kind == "reply_end":
            return Turn(
                client_ms=first,
                ttft_ms=float(message["ttft_ms"]),
                stages={name: float(ms) for name, ms in message["stages"].items()},
                generator=str(message["generator"]),
            )
        elif kind == "error":
            raise RuntimeError(f"turn {turn_id} failed: {message.get('code')}")


async def open_session(app: Running, user: str) -> ClientConnection:
    assert app.gateway is not None
    assert app.authority is not None
    ws = await connect(app.gateway.url)
    await ws.send(json.dumps({"type": "hello", "token": app.authority.issue(user)}))
    ready = json.loads(await ws.recv())
    if ready["type"] != "ready":
        raise RuntimeError(f"no ready: {ready}")
    return ws


def synthetic_request(text: str, conversation: Sequence[Exchange]) -> GenerationRequest:
    """The request Heartline's generator gets for `text` at this point of a session."""
    return GenerationRequest(
        session_id="bench",
        turn_id="bench",
        text=text,
        language="zh" if any("\u4e00" <= c <= "\u9fff" for c in text) else "en",
        emotion=_NEUTRAL,
        decision=_DECISION,
        history=HistorySummary.first_time(),
        conversation=tuple(conversation),
    )


async def measure(
    args: argparse.Namespace, fake: FakeVllm, app: Running
) -> tuple[list[Upstream], list[Turn]]:
    """`--warmup` then `--pairs` pairs, each (a) then (b); the warm-up is dropped."""
    builder = PromptBuilder(PromptSettings())
    guard = OutputGuard(release=args.guard_release)
    reply = "".join(fake.default.tokens)
    upstream: list[Upstream] = []
    turns: list[Turn] = []
    total = args.warmup + args.pairs
    url = f"{fake.base_url}/v1/chat/completions"
    connector = aiohttp.TCPConnector(limit=4, keepalive_timeout=4.0)
    timeout = aiohttp.ClientTimeout(total=30.0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, trust_env=False
    ) as client:
        ws: ClientConnection | None = None
        # Heartline keeps the last 10 exchanges of a session (`context_turns`).
        conversation: deque[Exchange] = deque(maxlen=CONTEXT_TURNS)
        try:
            for n in range(total):
                if n % args.session_turns == 0:
                    if ws is not None:
                        await ws.close()
                    ws = await open_session(app, f"bench-user-{n // args.session_turns}")
                    conversation.clear()
                assert ws is not None
                text = TEXTS[n % len(TEXTS)]
                request = synthetic_request(text, conversation)
                a = await upstream_request(client, url, builder, guard, request)
                b = await heartline_turn(ws, f"t{n}", text)
                conversation.append(Exchange(text=text, reply=reply))
                if n >= args.warmup:
                    upstream.append(a)
                    turns.append(b)
                if (n + 1) % 50 == 0:
                    print(f"  {n + 1}/{total} pairs", file=sys.stderr)
        finally:
            if ws is not None:
                await ws.close()
    return upstream, turns


# Reporting


def print_differences(
    title: str, rows: Sequence[tuple[str, Sequence[float], Sequence[float]]]
) -> None:
    """Per row: pX(b) - pX(a) at each percentile."""
    heads = "".join(f"{'p' + str(q):>10}" for q in QUANTILES)
    print(f"\n{title}")
    print(f"  {'(ms)':<34}{'':>7}{heads}")
    for name, b, a in rows:
        cells = "".join(f"{format_ms(percentile(b, q) - percentile(a, q)):>10}" for q in QUANTILES)
        print(f"  {name:<34}{'':>7}{cells}")


def report(upstream: list[Upstream], turns: list[Turn]) -> None:
    answered = [(a, b) for a, b in zip(upstream, turns, strict=True) if b.generator == "vllm"]
    fallbacks = len(turns) - len(answered)
    first = [a.first_ms for a, _ in answered]
    released = [a.released_ms for a, _ in answered]
    client = [b.client_ms for _, b in answered]
    server = [b.ttft_ms for _, b in answered]
    print_percentile_table(
        "Time to first token, side by side (a: upstream directly, b: through Heartline)",
        [
            ("(a) upstream: first content delta", first),
            ("(a') upstream: guard's first text", released),
            ("(b) Heartline: first reply_delta", client),
            ("    Heartline reply_end.ttft_ms", server),
        ],
    )
    overhead = [b - a for b, a in zip(client, first, strict=True)]
    beyond_guard = [b - a for b, a in zip(client, released, strict=True)]
    print_differences(
        "Overhead at each percentile, pX(b) - pX(a)",
        [("b - a (first token)", client, first), ("b - a' (guard's first text)", client, released)],
    )
    print_percentile_table(
        "Overhead per pair (b_i - a_i; a_i is the request just before)",
        [("b - a (first token)", overhead), ("b - a' (guard's first text)", beyond_guard)],
    )

    # b - a = guard hold + outside the worker + stages before the generator + generator chain
    parts: dict[str, list[float]] = {
        "guard holds the first text back": [a.released_ms - a.first_ms for a, _ in answered],
        "outside the worker (ws, gateway)": [b.client_ms - b.ttft_ms for _, b in answered],
        "stages before the generator": [
            b.ttft_ms - b.stages.get("first_token", 0.0) for _, b in answered
        ],
        "generator chain (first_token - a')": [
            b.stages.get("first_token", 0.0) - a.released_ms for a, b in answered
        ],
    }
    stages = {
        f"  of which {name}": [b.stages.get(name, 0.0) for _, b in answered]
        for name in PRE_GENERATOR
    }
    prompt = {"  of which prompt building": [a.prompt_ms for a in upstream]}
    rows = list(parts.items())
    print_percentile_table(
        "Where the overhead goes, per turn (the four parts add up to b - a)",
        [*rows[:3], *stages.items(), rows[3], *prompt.items()],
        label_width=38,
    )
    mean_overhead = statistics.fmean(overhead) if overhead else math.nan
    print(f"\nShare of the mean overhead ({format_ms(mean_overhead)} ms)")
    for name, samples in [*rows[:3], *stages.items(), rows[3], *prompt.items()]:
        mean = statistics.fmean(samples) if samples else math.nan
        print(f"  {name:<38}{format_ms(mean):>10} ms{100 * mean / mean_overhead:>8.1f} %")
    if fallbacks:
        print(f"\n{fallbacks} turns were answered by the fallback and are left out")


async def run(args: argparse.Namespace) -> None:
    tokens = tuple(itertools.islice(itertools.cycle(REPLY), args.tokens))
    script = Script(
        tokens=tokens,
        first_token_delay=args.first_token_ms / 1000,
        token_delay=args.token_ms / 1000,
    )
    async with FakeVllm(model=MODEL) as fake:
        fake.default = script
        with tempfile.TemporaryDirectory() as folder:
            settings = load_settings(
                data_dir=Path(folder),
                port=0,
                emotion_model=args.emotion_model,
                guard_release=args.guard_release,
                generator="vllm",
                vllm_url=fake.base_url,
                model=MODEL,
                messages_per_second=1000.0,
                message_burst=1000,
            )
            async with embedded(settings) as app:
                print(
                    f"upstream: fake vLLM, {len(tokens)} tokens, the first after"
                    f" {args.first_token_ms:g} ms, then one every {args.token_ms:g} ms"
                )
                print(
                    f"heartline: embedded, generator vllm, emotion model {args.emotion_model},"
                    f" guard {args.guard_release}, sessions of {args.session_turns} turns"
                )
                print(f"pairs: {args.pairs} after {args.warmup} warm-up, (a) and (b) alternating")
                upstream, turns = await measure(args, fake, app)
    report(upstream, turns)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=200, help="timed pairs (200)")
    parser.add_argument("--warmup", type=int, default=10, help="pairs run first, not timed (10)")
    parser.add_argument("--tokens", type=int, default=len(REPLY), help="tokens per reply")
    parser.add_argument(
        "--first-token-ms", type=float, default=50.0, help="upstream's time to its first token"
    )
    parser.add_argument(
        "--token-ms", type=float, default=10.0, help="upstream's time between tokens (10)"
    )
    parser.add_argument(
        "--emotion-model", default="lexicon", help="lexicon (default), auto, neural, ..."
    )
    parser.add_argument(
        "--guard-release", choices=["word", "sentence"], default="word", help="guard pace (word)"
    )
    parser.add_argument("--session-turns", type=int, default=10, help="turns per session (10)")
    parser.add_argument("--log-level", default="warning", help="Heartline's log level")
    args = parser.parse_args(argv)
    configure_logging(args.log_level, json=True)
    print(f"generation_overhead\nmachine: {machine_summary()}")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
