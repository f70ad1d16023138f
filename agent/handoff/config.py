"""The webhook's settings as one frozen object, made from `Settings` at the edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from agent import __version__
from agent.config import Settings
from agent.errors import ConfigError
from agent.handoff.retry import Backoff

__all__ = ["WebhookConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookConfig:
    """Where handoffs are posted, how they are signed, and the bounds on posting them.

    `lease` is how long a claimed delivery belongs to the process that claimed it:
    longer than an attempt and its bookkeeping, so no other process posts it
    meanwhile; a process that dies mid-attempt holds it that long before another
    tries again.
    """

    url: str
    secret: bytes = field(repr=False)
    user_agent: str = f"Heartline/{__version__} (handoff webhook)"
    # Timeouts (seconds)
    timeout: float = 5.0  # one attempt: connecting, sending, the response
    lease: float = 60.0
    poll_interval: float = 1.0  # how often due retries are looked for
    store_timeout: float = 10.0  # one database call, the transcript's included
    # Limits
    attempts: int = 8
    concurrency: int = 8  # attempts in flight in one process
    max_turns: int = 50  # exchanges of the conversation in a document
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"handoff webhook URL {self.url!r} is not an http(s) URL; "
                "set HEARTLINE_HANDOFF_WEBHOOK_URL to e.g. "
                "https://helpdesk.example.com/hooks/heartline"
            )
        if not self.secret:
            raise ConfigError(
                "the handoff webhook secret is empty; set HEARTLINE_HANDOFF_WEBHOOK_SECRET "
                "to the secret the help desk verifies with"
            )
        positive = {
            "timeout": self.timeout,
            "poll_interval": self.poll_interval,
            "store_timeout": self.store_timeout,
        }
        for name, value in positive.items():
            if not 0 < value < float("inf"):
                raise ValueError(f"{name} must be positive and finite")
        if not self.timeout < self.lease < float("inf"):
            raise ValueError("lease must be finite and longer than an attempt's timeout")
        if self.attempts < 1 or self.concurrency < 1 or self.max_turns < 1:
            raise ValueError("attempts, concurrency and max_turns must be at least 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookConfig | None:
        """The configured webhook, or None when no URL is set (handoffs go nowhere)."""
        if settings.handoff_webhook_url is None:
            return None
        if settings.handoff_webhook_secret is None:  # Settings refuses this; say it anyway
            raise ConfigError(
                "HEARTLINE_HANDOFF_WEBHOOK_URL needs HEARTLINE_HANDOFF_WEBHOOK_SECRET"
            )
        timeout = settings.handoff_webhook_timeout
        return cls(
            url=settings.handoff_webhook_url,
            secret=settings.handoff_webhook_secret.get_secret_value().encode(),
            timeout=timeout,
            lease=max(60.0, 2 * timeout + 10.0),
            attempts=settings.handoff_webhook_attempts,
        )
