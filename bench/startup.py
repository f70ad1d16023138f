"""Start-up time: the MiniLM encoder loaded in plain torch against through transformers, and serve.

Every sample is a fresh Python process, timed from spawn to exit (the encoder
loads) or to the banner that says where `heartline serve` listens. The encoder
variants alternate run by run, so both see the same machine; the ratio is of
their medians.

    .venv/bin/python bench/startup.py
    .venv/bin/python bench/startup.py --runs 10 --no-serve
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _stats import machine_summary, percentile, print_percentile_table

ROOT = Path(__file__).resolve().parents[1]

# Each loads the tokenizer and the encoder and reads one sentence.
PLAIN = """
import torch
from agent.emotion.minilm import load_minilm
tokenizer, encoder = load_minilm()
with torch.inference_mode():
    encoder(*(torch.from_numpy(array) for array in tokenizer.batch(["hello there"])))
"""
TRANSFORMERS = """
import torch
from transformers import AutoModel, AutoTokenizer
from agent.emotion.minilm_files import encoder_path
tokenizer = AutoTokenizer.from_pretrained(encoder_path(), local_files_only=True)
encoder = AutoModel.from_pretrained(encoder_path(), local_files_only=True).eval()
with torch.inference_mode():
    encoder(**tokenizer(["hello there"], return_tensors="pt"))
"""


def _timed_script(source: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", source], cwd=ROOT, check=True, capture_output=True, timeout=300
    )
    return (time.perf_counter() - started) * 1000


def _timed_serve() -> float:
    """Spawn to the "listening" banner, with the default models and a fresh data directory."""
    with tempfile.TemporaryDirectory() as data_dir:
        started = time.perf_counter()
        with subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "serve", "--port", "0", "--data-dir", data_dir],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as server:
            assert server.stdout is not None
            for line in server.stdout:
                if "listening on" in line:
                    break
            else:
                raise RuntimeError(f"heartline serve exited with {server.wait()} before listening")
            elapsed = (time.perf_counter() - started) * 1000
            server.send_signal(signal.SIGINT)
            server.wait(60)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="samples of each (default 5)")
    parser.add_argument("--no-serve", action="store_true", help="skip `heartline serve`")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    print(machine_summary())
    plain: list[float] = []
    reference: list[float] = []
    for _ in range(args.runs):
        plain.append(_timed_script(PLAIN))
        reference.append(_timed_script(TRANSFORMERS))
    rows = [("MiniLM, plain torch + tokenizers", plain), ("MiniLM, transformers", reference)]
    if not args.no_serve:
        serve = [_timed_serve() for _ in range(args.runs)]
        rows.append(("heartline serve, spawn to banner", serve))
    print_percentile_table("Fresh process to ready (ms)", rows)
    ratio = percentile(reference, 50) / percentile(plain, 50)
    print(f"\ntransformers / plain torch, p50: {ratio:.2f}x")


if __name__ == "__main__":
    main()
