"""Handoff deliveries: the outbox of the help-desk webhook.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 04:00:47.957143
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "handoff_deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Double(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("delivered_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_deliveries")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_handoff_deliveries_delivery_id")),
    )
    with op.batch_alter_table("handoff_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_handoff_deliveries_status_next_attempt_at"),
            ["status", "next_attempt_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("handoff_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handoff_deliveries_status_next_attempt_at"))

    op.drop_table("handoff_deliveries")
