"""Mood totals per user and session, label counts, policy state, retention indexes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 17:04:27.899245
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from memory.sql.moods import rebuild_statements

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "policy_states",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "policy", name=op.f("pk_policy_states")),
    )
    op.create_table(
        "user_labels",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_labels_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "label", name=op.f("pk_user_labels")),
    )
    op.create_table(
        "user_moods",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("valence_sum", sa.Double(), nullable=False),
        sa.Column("arousal_sum", sa.Double(), nullable=False),
        sa.Column("anger", sa.Integer(), nullable=False),
        sa.Column("disgust", sa.Integer(), nullable=False),
        sa.Column("fear", sa.Integer(), nullable=False),
        sa.Column("joy", sa.Integer(), nullable=False),
        sa.Column("sadness", sa.Integer(), nullable=False),
        sa.Column("surprise", sa.Integer(), nullable=False),
        sa.Column("neutral", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.Double(), nullable=False),
        sa.Column("last_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_moods_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_moods")),
    )
    op.create_table(
        "session_moods",
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("valence_sum", sa.Double(), nullable=False),
        sa.Column("arousal_sum", sa.Double(), nullable=False),
        sa.Column("anger", sa.Integer(), nullable=False),
        sa.Column("disgust", sa.Integer(), nullable=False),
        sa.Column("fear", sa.Integer(), nullable=False),
        sa.Column("joy", sa.Integer(), nullable=False),
        sa.Column("sadness", sa.Integer(), nullable=False),
        sa.Column("surprise", sa.Integer(), nullable=False),
        sa.Column("neutral", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.Double(), nullable=False),
        sa.Column("last_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_session_moods_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_session_moods_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_session_moods")),
    )
    with op.batch_alter_table("session_moods", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_session_moods_user_id_last_at"), ["user_id", "last_at"], unique=False
        )

    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_created_at"), ["created_at"], unique=False)

    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sessions_last_at"), ["last_at"], unique=False)

    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_turns_created_at"), ["created_at"], unique=False)

    # Totals for the turns stored before this revision.
    for statement in rebuild_statements():
        op.get_bind().execute(statement)


def downgrade() -> None:
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_turns_created_at"))

    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_last_at"))

    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_created_at"))

    with op.batch_alter_table("session_moods", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_moods_user_id_last_at"))

    op.drop_table("session_moods")
    op.drop_table("user_moods")
    op.drop_table("user_labels")
    op.drop_table("policy_states")
