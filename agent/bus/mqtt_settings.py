"""How to reach the MQTT broker and how long to wait for it."""

from __future__ import annotations

import math
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import ConfigError

__all__ = ["MqttSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttSettings:
    """How to reach the broker and how long to wait for it."""

    host: str = "127.0.0.1"
    port: int = 1883
    # Identity: unique per process (see the module docstring).
    client_id: str | None = None
    client_id_prefix: str = "heartline"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # TLS: on when `tls_ca_file` is set, and the broker's certificate must chain to it;
    # a certificate and key of the client's own for brokers that ask for one.
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Timeouts (seconds)
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0
    publish_timeout_s: float = 10.0
    subscribe_timeout_s: float = 10.0
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 10.0
    # How long the broker keeps our session (subscriptions, queued QoS 1
    # messages) after the connection drops.
    session_expiry_s: int = 30
    # Delivery
    qos: int = 1
    tcp_nodelay: bool = True
    max_inflight: int = 100

    def __post_init__(self) -> None:
        positive = {
            "connect_timeout_s": self.connect_timeout_s,
            "publish_timeout_s": self.publish_timeout_s,
            "subscribe_timeout_s": self.subscribe_timeout_s,
            "reconnect_min_s": self.reconnect_min_s,
            "keepalive_s": self.keepalive_s,
            "max_inflight": self.max_inflight,
        }
        for name, value in positive.items():
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"mqtt {name} must be a positive finite number, got {value}")
        if self.reconnect_max_s < self.reconnect_min_s or not math.isfinite(self.reconnect_max_s):
            raise ConfigError("mqtt reconnect_max_s must be finite and >= reconnect_min_s")
        if not 0 <= self.session_expiry_s <= 0xFFFF_FFFE:
            raise ConfigError("mqtt session_expiry_s must be between 0 and 4294967294 seconds")
        if self.qos not in (0, 1, 2):
            raise ConfigError(f"mqtt qos must be 0, 1 or 2, got {self.qos}; use 1")
        if not 0 < self.port < 65536:
            raise ConfigError(f"mqtt port must be 1-65535, got {self.port}")
        if self.tls_ca_file is None and self.tls_cert_file is not None:
            raise ConfigError("a client certificate for the broker needs its CA file too")
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise ConfigError("a client key for the broker needs its certificate too")

    def reconnect_delay(self, attempt: int, *, jitter: float) -> float:
        """Capped exponential backoff, times `jitter` (0.5 to 1, random) so that a fleet
        does not reconnect in step."""
        ceiling = min(self.reconnect_max_s, self.reconnect_min_s * 2.0 ** min(attempt, 30))
        return ceiling * jitter

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context to reach the broker with; None for plain TCP.

        Raises `ConfigError` when a file cannot be read or is not what it should be.
        """
        if self.tls_ca_file is None:
            return None
        try:
            context = ssl.create_default_context(cafile=self.tls_ca_file)
            if self.tls_cert_file is not None:
                context.load_cert_chain(self.tls_cert_file, self.tls_key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot use the broker's TLS files: {exc}") from exc
        return context
