"""Fuzzing `/ws`: frames no client should send, and what `heartline serve` answers.

Every frame is wrong in one way: not JSON, not an object, a duplicate key or `NaN`, no
type or an unknown one, a field missing, unknown, of the wrong type or out of range,
larger than the soft limit, binary, feedback for a turn that does not exist. The server
must answer each with exactly one `error` of a documented code, none `internal`, and
keep every connection open; afterwards each connection still gets a turn answered.

    .venv/bin/python -m tests.chaos.fuzz                   # 100,000 frames
    .venv/bin/python -m tests.chaos.fuzz --frames 5000 --seed 7
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import string
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from agent.gateway.protocol import ErrorCode
from tests.support.cli import serving

__all__ = ["FuzzReport", "frames", "fuzz"]

DOCUMENTED = {code.value for code in ErrorCode} - {"internal"}
SOFT_LIMIT = 64 * 1024
# The per-connection rate limit would answer most frames with `rate_limited`.
_NO_RATE_LIMIT = {"HEARTLINE_MESSAGES_PER_SECOND": "1000000", "HEARTLINE_MESSAGE_BURST": "1000000"}
Frame = str | bytes


def _word(rnd: random.Random) -> str:
    return "".join(rnd.choices(string.ascii_letters + "_", k=rnd.randint(1, 12)))


def _junk(rnd: random.Random) -> Any:
    return rnd.choice(
        [None, True, 3, -1, 2.5, "", "x" * rnd.randint(1, 40), [], [1, "a"], {"k": 1}]
    )


def _not_json(rnd: random.Random) -> Frame:
    text = "".join(rnd.choices(string.printable + "你好{}[]\"'", k=rnd.randint(1, 80)))
    return "{" + text if rnd.random() < 0.5 else text + "}"


def _not_an_object(rnd: random.Random) -> Frame:
    return json.dumps(rnd.choice([[1, 2], "hello", 42, None, True, [{"type": "cancel"}]]))


def _duplicate_key_or_nan(rnd: random.Random) -> Frame:
    return rnd.choice(
        [
            '{"type": "cancel", "type": "cancel"}',
            '{"type": "feedback", "turn_id": "t1", "score": NaN}',
            '{"type": "user_message", "id": "a", "text": "hi", "signals": {"joy": Infinity}}',
        ]
    )


def _no_or_unknown_type(rnd: random.Random) -> Frame:
    fields = {_word(rnd): _junk(rnd) for _ in range(rnd.randint(0, 3))}
    fields.pop("type", None)
    if rnd.random() < 0.5:
        fields["type"] = rnd.choice([_word(rnd) + "_x", 7, None, ["user_message"]])
    return json.dumps(fields)


def _bad_user_message(rnd: random.Random) -> Frame:
    message: dict[str, Any] = {"type": "user_message", "id": "m1", "text": "hello"}
    match rnd.randrange(6):
        case 0:
            del message[rnd.choice(["id", "text"])]
        case 1:
            message[rnd.choice(["id", "text"])] = rnd.choice([None, 5, [], {"a": 1}, True])
        case 2:
            message[_word(rnd) + "_extra"] = _junk(rnd)
        case 3:
            message["text"] = rnd.choice(["", "   ", "\n\t"])
        case 4:
            message["id"] = rnd.choice(["", "has space", "x" * 65, "é", "a/b"])
        case _:
            message["signals"] = rnd.choice(
                [{"joy": 2.0}, {"rage": 0.5}, {"joy": "high"}, [0.5], {"joy": -0.1}]
            )
    return json.dumps(message)


def _bad_feedback_or_cancel(rnd: random.Random) -> Frame:
    if rnd.random() < 0.5:
        score = rnd.choice([0, 6, 2.5, "5", None, True])
        return json.dumps({"type": "feedback", "turn_id": "t1", "score": score})
    if rnd.random() < 0.5:
        return json.dumps(
            {"type": "feedback", "turn_id": f"never-{rnd.randrange(10**6)}", "score": 3}
        )
    return json.dumps({"type": "cancel", _word(rnd) + "_extra": _junk(rnd)})


def _too_large(rnd: random.Random) -> Frame:
    return json.dumps({"type": "user_message", "id": "big", "text": "a" * (SOFT_LIMIT + 10)})


def _binary(rnd: random.Random) -> Frame:
    return rnd.randbytes(rnd.randint(1, 64))


_KINDS: list[tuple[float, Callable[[random.Random], Frame]]] = [
    (0.2, _not_json),
    (0.05, _not_an_object),
    (0.05, _duplicate_key_or_nan),
    (0.15, _no_or_unknown_type),
    (0.3, _bad_user_message),
    (0.15, _bad_feedback_or_cancel),
    (0.005, _too_large),
    (0.095, _binary),
]


def frames(count: int, seed: int) -> list[Frame]:
    """`count` wrong frames, the same ones for the same seed."""
    rnd = random.Random(seed)
    weights = [weight for weight, _ in _KINDS]
    kinds = rnd.choices([make for _, make in _KINDS], weights=weights, k=count)
    return [make(rnd) for make in kinds]


@dataclass
class FuzzReport:
    frames: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    other_messages: int = 0
    closed: int = 0
    answered_after: int = 0

    @property
    def clean(self) -> bool:
        undocumented = set(self.errors) - DOCUMENTED
        return (
            sum(self.errors.values()) == self.frames
            and not undocumented
            and not self.other_messages
            and not self.closed
        )


async def _one_connection(url: str, token: str, batch: list[Frame], report: FuzzReport) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(url, additional_headers=headers, max_size=2**21) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        reader = asyncio.create_task(_count_errors(ws, len(batch), report))
        for frame in batch:
            await ws.send(frame)
        report.frames += len(batch)
        async with asyncio.timeout(120):
            await reader
        await ws.send(json.dumps({"type": "user_message", "id": "after", "text": "Thanks!"}))
        async with asyncio.timeout(30):
            while json.loads(await ws.recv())["type"] != "reply_end":
                pass
        report.answered_after += 1


async def _count_errors(ws: ClientConnection, expected: int, report: FuzzReport) -> None:
    seen = 0
    try:
        while seen < expected:
            message = json.loads(await ws.recv())
            if message.get("type") == "error":
                report.errors[message["code"]] += 1
                seen += 1
            else:
                report.other_messages += 1
    except Exception:
        report.closed += 1
        raise


async def fuzz(url: str, token: str, *, count: int, seed: int, connections: int) -> FuzzReport:
    report = FuzzReport()
    every = frames(count, seed)
    batches = [every[i::connections] for i in range(connections)]
    await asyncio.gather(*(_one_connection(url, token, batch, report) for batch in batches))
    return report


def _banner_value(banner: list[str], pattern: str) -> str:
    for line in banner:
        if found := re.search(pattern, line):
            return found.group(1)
    raise AssertionError(f"no {pattern!r} in the banner: {banner}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="heartline-fuzz-") as data,
        serving(
            "--port",
            "0",
            "--data-dir",
            data,
            "--workers",
            "1",
            "--emotion-model",
            "lexicon",
            env=_NO_RATE_LIMIT,
        ) as banner,
    ):
        url = _banner_value(banner, r"listening on (ws://\S+)")
        token = _banner_value(banner, r"Demo token .*: (\S+)")
        report = asyncio.run(
            fuzz(url, token, count=args.frames, seed=args.seed, connections=args.connections)
        )
    elapsed = time.perf_counter() - started
    print(f"{report.frames} frames on {args.connections} connections in {elapsed:.1f} s")
    print("errors: " + ", ".join(f"{c} {n}" for c, n in sorted(report.errors.items())))
    print(
        f"other messages {report.other_messages}, connections closed {report.closed}, "
        f"turns answered afterwards {report.answered_after} of {args.connections}"
    )
    return 0 if report.clean and report.answered_after == args.connections else 1


if __name__ == "__main__":
    sys.exit(main())
