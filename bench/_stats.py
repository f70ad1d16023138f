"""Shared helpers of the benchmark scripts: percentiles, tables, CPU shares, the open-file limit.

Nothing here asserts: benchmarks print what they measured.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psutil

__all__ = [
    "QUANTILES",
    "CpuSnapshot",
    "MachineShare",
    "ProcessUsage",
    "cpu_snapshot",
    "format_machine_share",
    "format_ms",
    "machine_share",
    "machine_summary",
    "percentile",
    "print_percentile_table",
    "process_usage",
    "raise_open_file_limit",
]

QUANTILES: tuple[int, ...] = (50, 95, 99)


def percentile(samples: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) by linear interpolation between closest ranks.

    NaN for an empty sample, the value itself for a single one.
    """
    if not samples:
        return math.nan
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * min(max(q, 0.0), 100.0) / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def format_ms(value: float) -> str:
    """Milliseconds with a precision that suits their size; "-" when unknown."""
    if math.isnan(value):
        return "-"
    if value < 10:
        return f"{value:.3f}"
    if value < 1000:
        return f"{value:.1f}"
    return f"{value:.0f}"


def print_percentile_table(
    title: str, rows: Iterable[tuple[str, Sequence[float]]], *, label_width: int = 34
) -> None:
    """One line per row: name, count, p50/p95/p99 and max, all in milliseconds."""
    heads = "".join(f"{'p' + str(q):>10}" for q in QUANTILES)
    print(f"\n{title}")
    print(f"  {'(ms)':<{label_width}}{'n':>7}{heads}{'max':>10}")
    for name, samples in rows:
        cells = "".join(f"{format_ms(percentile(samples, q)):>10}" for q in QUANTILES)
        top = format_ms(max(samples)) if samples else "-"
        print(f"  {name:<{label_width}}{len(samples):>7}{cells}{top:>10}")


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """CPU seconds (user + system) and resident bytes of some processes, their children included."""

    cpu_s: float
    rss: int


def process_usage(pids: Iterable[int]) -> ProcessUsage:
    """What `pids` and every descendant have used so far; processes that ended count 0."""
    cpu, rss = 0.0, 0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in tree:
            try:
                times = process.cpu_times()
                cpu += times.user + times.system
                rss += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
    return ProcessUsage(cpu, rss)


@dataclass(frozen=True, slots=True)
class MachineShare:
    """The machine's busy CPU seconds over a phase and each part's share of them."""

    elapsed_s: float
    busy_s: float
    by_part: dict[str, float]

    @property
    def rest_s(self) -> float:
        """What no part of the run used: the broker, the database, anything else running."""
        return max(self.busy_s - sum(self.by_part.values()), 0.0)


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    at: float
    busy_s: float
    by_part: dict[str, float]


def _busy_s() -> float:
    """CPU seconds the machine has spent on anything but idling, waiting and its hypervisor."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0) - getattr(times, "steal", 0.0)


def cpu_snapshot(parts: dict[str, list[int]]) -> CpuSnapshot:
    """CPU seconds so far: the machine's, each part's (its processes and their children),
    and this process's own as the load generator."""
    own = psutil.Process().cpu_times()
    by_part = {name: process_usage(pids).cpu_s for name, pids in parts.items()}
    by_part["load generator"] = own.user + own.system
    return CpuSnapshot(time.perf_counter(), _busy_s(), by_part)


def machine_share(before: CpuSnapshot, after: CpuSnapshot) -> MachineShare:
    return MachineShare(
        elapsed_s=after.at - before.at,
        busy_s=after.busy_s - before.busy_s,
        by_part={name: after.by_part[name] - before.by_part[name] for name in after.by_part},
    )


def format_machine_share(share: MachineShare, units: int, unit: str = "turn") -> str:
    """Each part's CPU milliseconds per unit of work, and how many cores were busy."""
    parts = {**share.by_part, "rest": share.rest_s}
    split = ", ".join(f"{name} {cpu * 1000.0 / units:.2f}" for name, cpu in parts.items())
    cores = share.busy_s / share.elapsed_s if share.elapsed_s else 0.0
    return f"machine CPU ms/{unit}: {split}; {cores:.2f} of {psutil.cpu_count()} cores busy"


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (never past the hard limit); the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        return ceiling
    return soft


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_summary() -> str:
    """One line: CPU count and model, memory, Python and OS (for the recorded results)."""
    memory_gib = psutil.virtual_memory().total / 2**30
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    python = f"Python {sys.version.split()[0]}"
    return f"{cpus} CPU ({_cpu_model()}), {memory_gib:.1f} GiB RAM, {python}, {platform.system()}"
