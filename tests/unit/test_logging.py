"""Logs never carry personal data: every string of an event is redacted."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from agent.logging import configure_logging, redact_event


def test_every_string_value_is_redacted() -> None:
    event = {"event": "mail to bob@example.org failed", "error": "from 203.0.113.9", "n": 3}
    assert redact_event(None, "info", event) == {
        "event": "mail to [EMAIL] failed",
        "error": "from [IP]",
        "n": 3,
    }


def test_the_services_own_address_stays_readable() -> None:
    event = {"event": "gateway listening", "host": "10.1.2.3", "port": 8765}
    assert redact_event(None, "info", dict(event)) == event


def test_configured_logging_writes_redacted_json(capsys: pytest.CaptureFixture[str]) -> None:
    handlers = logging.getLogger().handlers[:]
    configure_logging("info", json=True)
    try:
        structlog.get_logger("test").warning("login", user_hint="alice@example.com")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers[:] = handlers
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["user_hint"] == "[EMAIL]"
    assert line["event"] == "login"
