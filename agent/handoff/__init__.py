"""Handoffs to a help desk: a signed, retried, recorded webhook (docs/handoff.md).

Wiring, in a worker::

    config = WebhookConfig.from_settings(settings)
    if config is not None:
        outbox = SqlHandoffOutbox(engine, cipher=settings.cipher())
        notifier = await stack.enter_async_context(
            HandoffNotifier(outbox, transcript, config)
        )
        await stack.enter_async_context(
            HandoffForwarder(bus, notifier, group=settings.worker_group)
        )
"""

from agent.handoff.config import WebhookConfig
from agent.handoff.document import HandoffDocument, build_document, encode_document
from agent.handoff.forwarder import HandoffForwarder, HandoffSubmitter
from agent.handoff.notifier import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    HandoffNotifier,
    Transcript,
)
from agent.handoff.retry import Backoff
from agent.handoff.signing import sign, verify

__all__ = [
    "ATTEMPT_HEADER",
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "Backoff",
    "HandoffDocument",
    "HandoffForwarder",
    "HandoffNotifier",
    "HandoffSubmitter",
    "Transcript",
    "WebhookConfig",
    "build_document",
    "encode_document",
    "sign",
    "verify",
]
