"""structlog set-up, called once at the CLI edge (never at import time).

JSON lines when stderr is not a terminal (production, containers); aligned
key-value lines in a terminal. Loggers are bound to `session_id` and `turn_id`
where they run; message text is logged at debug level only, and every
string in an event (the exception text included) passes through PII redaction
before it is written, whatever the level.
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import EventDict, WrappedLogger

from agent.privacy.redaction import redact

__all__ = ["configure_logging", "redact_event"]


# Where the service itself listens and connects: configuration, not anyone's data.
_OPERATIONAL_KEYS = frozenset({"host", "path", "url"})


def redact_event(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """A structlog processor: personal data in any string value becomes a placeholder.

    The service's own addresses (`_OPERATIONAL_KEYS`) are left as they are, so
    an operator still sees where it listens.
    """
    for key, value in event.items():
        if isinstance(value, str) and key not in _OPERATIONAL_KEYS:
            event[key] = redact(value)
    return event


def configure_logging(level: str = "info", *, json: bool | None = None) -> None:
    """Route structlog (and stdlib logging, for libraries) to stderr."""
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}; use debug, info, warning or error")
    if json is None:
        json = not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)
