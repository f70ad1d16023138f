"""Declarative models of the conversation store and the turn ledger.

Every timestamp is a float of epoch seconds (UTC), as the records and the
ledger carry them: no time zones to convert and one column type on both
databases. Emotion readings and decisions hang off a turn one-to-one.

`UserMoodRow`, `SessionMoodRow` and `UserLabelRow` are running totals the
writer adds each batch's new turns to, so a user's history summary reads a
handful of rows however many turns the user has. Text columns hold redacted
text, encrypted when a key is configured (`memory.sql.text`).

`HandoffDeliveryRow` is the outbox of help-desk webhook deliveries
(`memory.handoffs`); it has no foreign keys, since a handoff may be recorded
before the writer has stored the session it comes from.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "MOOD_GROUPS",
    "Base",
    "DecisionRow",
    "EmotionRow",
    "FeedbackRow",
    "HandoffDeliveryRow",
    "LedgerRow",
    "PolicyStateRow",
    "SessionMoodRow",
    "SessionRow",
    "TurnRow",
    "UserLabelRow",
    "UserMoodRow",
    "UserRow",
]

# Each turn's dominant label counts towards its Ekman group's column.
MOOD_GROUPS = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a bigint.
_Id = BigInteger().with_variant(Integer(), "sqlite")
_Json = JSON().with_variant(JSONB(), "postgresql")
# Python None stored as SQL NULL (not JSON null), so IS NULL finds it.
_OptionalJson = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant", "external_id"),)

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    external_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Double())


class SessionRow(Base):
    __tablename__ = "sessions"
    __table_args__ = (Index(None, "user_id", "started_at"), Index(None, "last_at"))

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[int] = mapped_column(_Id, ForeignKey("users.id", ondelete="CASCADE"))
    started_at: Mapped[float] = mapped_column(Double())
    last_at: Mapped[float] = mapped_column(Double())


class TurnRow(Base):
    __tablename__ = "turns"
    __table_args__ = (
        # A session's turns in order (and one row per turn).
        UniqueConstraint("session_id", "seq"),
        # A user's turns, newest first.
        Index(None, "user_id", "created_at"),
        # Retention: the oldest turns of everyone.
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("sessions.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(_Id, ForeignKey("users.id", ondelete="CASCADE"))
    turn_id: Mapped[str] = mapped_column(String(128))
    seq: Mapped[int] = mapped_column(Integer())
    text: Mapped[str] = mapped_column(Text())
    reply: Mapped[str] = mapped_column(Text())
    interrupted: Mapped[bool] = mapped_column(Boolean())
    generator: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Double())
    flow_state: Mapped[str | None] = mapped_column(String(48), nullable=True)


class EmotionRow(Base):
    __tablename__ = "emotion_readings"

    turn_id: Mapped[int] = mapped_column(
        _Id, ForeignKey("turns.id", ondelete="CASCADE"), primary_key=True
    )
    scores: Mapped[dict[str, Any]] = mapped_column(_Json)
    dominant: Mapped[str] = mapped_column(String(64))
    valence: Mapped[float] = mapped_column(Double())
    arousal: Mapped[float] = mapped_column(Double())
    intensity: Mapped[float] = mapped_column(Double())
    model: Mapped[str] = mapped_column(String(128))


class DecisionRow(Base):
    __tablename__ = "decisions"

    turn_id: Mapped[int] = mapped_column(
        _Id, ForeignKey("turns.id", ondelete="CASCADE"), primary_key=True
    )
    action: Mapped[str] = mapped_column(String(16))
    strategy: Mapped[str] = mapped_column(String(32))
    tone: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Double())
    policy: Mapped[str] = mapped_column(String(64))
    reasons: Mapped[list[str]] = mapped_column(_Json)
    propensity: Mapped[float | None] = mapped_column(Double(), nullable=True)
    abstained: Mapped[list[str]] = mapped_column(_Json, default=list, server_default="[]")
    # The context features the decision was made on, for off-policy evaluation.
    features: Mapped[list[float] | None] = mapped_column(_OptionalJson, nullable=True)


class FeedbackRow(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        Index(None, "session_id", "turn_id"),
        Index(None, "user_id", "created_at"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("sessions.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(_Id, ForeignKey("users.id", ondelete="CASCADE"))
    turn_id: Mapped[str] = mapped_column(String(128))
    score: Mapped[int] = mapped_column(Integer())
    created_at: Mapped[float] = mapped_column(Double())


class _MoodTotals:
    """Running totals over a set of turns: sums for the means, a count per Ekman group."""

    turns: Mapped[int] = mapped_column(Integer())
    valence_sum: Mapped[float] = mapped_column(Double())
    arousal_sum: Mapped[float] = mapped_column(Double())
    anger: Mapped[int] = mapped_column(Integer())
    disgust: Mapped[int] = mapped_column(Integer())
    fear: Mapped[int] = mapped_column(Integer())
    joy: Mapped[int] = mapped_column(Integer())
    sadness: Mapped[int] = mapped_column(Integer())
    surprise: Mapped[int] = mapped_column(Integer())
    neutral: Mapped[int] = mapped_column(Integer())
    first_at: Mapped[float] = mapped_column(Double())
    last_at: Mapped[float] = mapped_column(Double())


class UserMoodRow(_MoodTotals, Base):
    """A user's long-run baseline: totals over every stored turn of theirs."""

    __tablename__ = "user_moods"

    user_id: Mapped[int] = mapped_column(
        _Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class SessionMoodRow(_MoodTotals, Base):
    """One session's mood: totals over its turns."""

    __tablename__ = "session_moods"
    __table_args__ = (Index(None, "user_id", "last_at"),)

    session_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(_Id, ForeignKey("users.id", ondelete="CASCADE"))


class UserLabelRow(Base):
    """How often each label was a user's dominant emotion: their most frequent emotions."""

    __tablename__ = "user_labels"

    user_id: Mapped[int] = mapped_column(
        _Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer())


class PolicyStateRow(Base):
    """A learning policy's parameters, shared by every worker of a tenant."""

    __tablename__ = "policy_states"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer())
    state: Mapped[dict[str, Any]] = mapped_column(_Json)
    updated_at: Mapped[float] = mapped_column(Double())


class LedgerRow(Base):
    __tablename__ = "turn_ledger"
    __table_args__ = (Index(None, "done", "lease_until"),)

    session_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer(), primary_key=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary())
    done: Mapped[bool] = mapped_column(Boolean(), default=False)
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_until: Mapped[float] = mapped_column(Double(), default=0.0)
    first_seen: Mapped[float] = mapped_column(Double())


class HandoffDeliveryRow(Base):
    """A handoff document for the help desk's webhook, kept until delivered or given up.

    `body` is the exact JSON posted (signed as is), encrypted when a key is configured.
    """

    __tablename__ = "handoff_deliveries"
    __table_args__ = (
        UniqueConstraint("delivery_id"),
        # Claims: the pending deliveries that are due.
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(64))
    tenant: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(128))
    trigger: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text())
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer())
    next_attempt_at: Mapped[float] = mapped_column(Double())
    last_status: Mapped[int | None] = mapped_column(Integer(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[float] = mapped_column(Double())
    delivered_at: Mapped[float | None] = mapped_column(Double(), nullable=True)
