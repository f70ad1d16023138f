"""The webhook's config object, from settings and on its own."""

from __future__ import annotations

from typing import Any

import pytest

from agent.config import load_settings
from agent.errors import ConfigError
from agent.handoff.config import WebhookConfig

URL = "https://helpdesk.example.com/hooks/heartline"


def test_no_url_means_no_webhook() -> None:
    assert WebhookConfig.from_settings(load_settings()) is None


def test_the_settings_carry_over() -> None:
    settings = load_settings(
        handoff_webhook_url=URL,
        handoff_webhook_secret="s3cret",
        handoff_webhook_timeout=40.0,
        handoff_webhook_attempts=3,
    )
    config = WebhookConfig.from_settings(settings)
    assert config is not None
    assert (config.url, config.secret, config.timeout, config.attempts) == (
        URL,
        b"s3cret",
        40.0,
        3,
    )
    assert config.lease > config.timeout
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize("url", ["ftp://helpdesk/x", "helpdesk.example.com/x", "https://", ""])
def test_a_url_that_is_not_http_says_how_to_fix_it(url: str) -> None:
    with pytest.raises(ConfigError, match="HEARTLINE_HANDOFF_WEBHOOK_URL"):
        WebhookConfig(url=url, secret=b"s")


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="secret"):
        WebhookConfig(url=URL, secret=b"")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0.0},
        {"timeout": float("inf")},
        {"timeout": 10.0, "lease": 10.0},
        {"poll_interval": -1.0},
        {"attempts": 0},
        {"concurrency": 0},
        {"max_turns": 0},
    ],
)
def test_unbounded_or_empty_limits_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        WebhookConfig(url=URL, secret=b"s", **kwargs)
