"""A vLLM-shaped upstream for the benchmarks: the tests' fake vLLM server, in its own process.

Every request gets the same reply: `--tokens` tokens, the first after `--first-token-ms`,
each next one `--token-ms` later, in vLLM's event stream byte for byte
(tests/support/fake_vllm.py). It prints `listening on http://127.0.0.1:PORT` once it
accepts connections and runs until SIGTERM or SIGINT. uvloop where installed.

    .venv/bin/python bench/fake_upstream.py --port 8000 --first-token-ms 50 --token-ms 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))  # for tests.support, which is not installed
from tests.support.fake_vllm import FakeVllm, Script  # noqa: E402

MODEL = "bench-model"
WORDS = (
    "I", " understand", " how", " frustrating", " that", " is", ".", " Let", " me", " look",
    " into", " your", " order", " right", " away", " and", " see", " what", " happened", ".",
)  # fmt: skip


def reply_tokens(count: int) -> tuple[str, ...]:
    """`count` tokens of a plausible reply (the words above, repeated)."""
    return tuple(WORDS[index % len(WORDS)] for index in range(count))


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with FakeVllm(model=MODEL, port=args.port, keep_requests=False) as server:
        server.default = Script(
            tokens=reply_tokens(args.tokens),
            first_token_delay=args.first_token_ms / 1000.0,
            token_delay=args.token_ms / 1000.0,
        )
        print(f"listening on {server.base_url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0: a free port (default)")
    parser.add_argument("--tokens", type=int, default=40, help="tokens per reply (default 40)")
    parser.add_argument("--first-token-ms", type=float, default=50.0, help="default 50")
    parser.add_argument("--token-ms", type=float, default=10.0, help="default 10")
    args = parser.parse_args(argv)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
