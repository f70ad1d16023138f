"""Emotion model speed: sentences/s in batches, single-sentence latency, and through the batcher.

For each model: batched throughput at the batch size given (default 32) over
real sentences, the latency of one sentence at a time (p50/p95/p99), and the
latency of concurrent single reads through `MicroBatcher` (the path turns
take in the server), side by side in one run. The neural model is measured
at each precision given (by default ``auto``, float32 in ONNX Runtime, and
bfloat16 in torch), with the speed-up over the first. Each model is measured alone and as served
(read for support text: cue words and its support head), side by side. Targets for the
shipped English model on 2 cores: >= 400 sentences/s batched, <= 10 ms p50 single.

    .venv/bin/python bench/emotion_speed.py
    .venv/bin/python bench/emotion_speed.py --models neural --precisions float32,bfloat16
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from _stats import machine_summary, percentile, print_percentile_table

from agent.emotion.base import EmotionModel
from agent.emotion.batching import MicroBatcher
from agent.emotion.catalog import load_model
from agent.emotion.precision import PRECISIONS, Precision
from agent.emotion.support_reader import SupportReader, shipped_heads
from agent.training.emotion.datasets import read_dataset

_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
_SOURCES = {
    "neural": _DATA / "goemotions" / "dev.tsv",
    "lexicon": _DATA / "goemotions" / "dev.tsv",
    "chinese": _DATA / "smp2020_ewect_usual" / "dev.tsv",
}


def _throughput(model: EmotionModel, texts: Sequence[str], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        model.predict(texts[start : start + batch])
    return len(texts) / (time.perf_counter() - started)


def _single(model: EmotionModel, texts: Sequence[str]) -> list[float]:
    times = []
    for text in texts:
        started = time.perf_counter()
        model.predict([text])
        times.append((time.perf_counter() - started) * 1000)
    return times


async def _through_batcher(
    model: EmotionModel, texts: Sequence[str], concurrent: int
) -> list[float]:
    """Each of `concurrent` callers reads one sentence at a time, as concurrent turns do."""
    times: list[float] = []

    async def caller(mine: Sequence[str]) -> None:
        for text in mine:
            started = time.perf_counter()
            await batcher.read_batch([text])
            times.append((time.perf_counter() - started) * 1000)

    async with MicroBatcher(model) as batcher:
        await asyncio.gather(*(caller(texts[i::concurrent]) for i in range(concurrent)))
    return times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="neural,chinese,lexicon", help="comma-separated")
    parser.add_argument("--sentences", type=int, default=1000, help="per measurement (1000)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (32)")
    parser.add_argument("--concurrent", type=int, default=16, help="batcher callers (16)")
    parser.add_argument(
        "--precisions", default="auto,bfloat16", help="neural model precisions (auto,bfloat16)"
    )
    args = parser.parse_args(argv)
    if not set(args.precisions.split(",")) <= set(PRECISIONS):
        parser.error(f"--precisions: each must be one of {', '.join(PRECISIONS)}")
    precisions = cast(list[Precision], args.precisions.split(","))
    print(f"emotion_speed\nmachine: {machine_summary()}")
    for name in args.models.split(","):
        source = _SOURCES.get(name)
        if source is None or not source.exists():
            print(f"{name}: no sentences to read (looked for {source})", file=sys.stderr)
            return 2
        texts = [e.text for e in read_dataset(source).examples][: args.sentences]
        first_rate: float | None = None
        for precision in precisions if name == "neural" else precisions[:1]:
            rate = _measure(name, precision, texts, args, first_rate)
            first_rate = first_rate or rate
    return 0


def _measure(
    name: str,
    precision: Precision,
    texts: Sequence[str],
    args: argparse.Namespace,
    first_rate: float | None,
) -> float:
    """Print one model's speed at one precision; return its batched sentences/s."""
    started = time.perf_counter()
    alone = load_model(name, precision=precision)
    load_s = time.perf_counter() - started
    served = SupportReader(alone, heads=shipped_heads(alone.name))
    label = alone.name + (f" ({alone.precision})" if hasattr(alone, "precision") else "")
    rates = []
    for how, model in (("alone", alone), ("as served", served)):
        model.predict(texts[:8])  # warm-up
        rate = _throughput(model, texts, args.batch)
        single = _single(model, texts[: min(300, len(texts))])
        batched = asyncio.run(_through_batcher(model, texts, args.concurrent))
        ratio = f" ({rate / first_rate:.2f}x the first precision)" if first_rate else ""
        print(
            f"\n{label}, {how}: load {load_s:.2f} s; batched (batch {args.batch}) "
            f"{rate:,.0f} sentences/s{ratio}; single p50 {percentile(single, 50):.2f} ms"
        )
        print_percentile_table(
            f"{label}, {how}, latency",
            [
                ("one sentence, direct", single),
                (f"one sentence, {args.concurrent} callers via batcher", batched),
            ],
        )
        rates.append(rate)
    return rates[0]


if __name__ == "__main__":
    sys.exit(main())
