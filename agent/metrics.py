"""Prometheus metrics of one Heartline process, in a registry of its own."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip


@dataclass
class Metrics:
    """Counters and histograms for turns, TTFT, stage latencies, errors and connections."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.turns = Counter(
            "heartline_turns", "Turns handled, by outcome", ["outcome"], registry=r
        )
        self.ttft = Histogram(
            "heartline_ttft_seconds",
            "Time from a turn reaching the worker to its first reply token",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.stage = Histogram(
            "heartline_stage_seconds",
            "Time spent in each pipeline stage",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter("heartline_errors", "Errors by stable code", ["code"], registry=r)
        self.connections = Gauge(
            "heartline_ws_connections", "Open WebSocket connections", registry=r
        )
        self.frames = Counter(
            "heartline_ws_frames", "Client frames received, by type", ["type"], registry=r
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
