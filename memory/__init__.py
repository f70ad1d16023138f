"""Durable state: conversations, per-user emotional history and the turn ledger.

Seams are protocols (`ConversationStore`, `TurnLedger`); SQL implementations
live in `memory.sql`. Nothing here imports the runtime (`agent` beyond its
shared values and errors).
"""

from memory.ledger import ClaimOutcome, InMemoryTurnLedger, TurnLedger
from memory.records import FeedbackRecord, TurnRecord
from memory.store import ConversationStore

__all__ = [
    "ClaimOutcome",
    "ConversationStore",
    "FeedbackRecord",
    "InMemoryTurnLedger",
    "TurnLedger",
    "TurnRecord",
]
