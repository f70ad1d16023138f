"""Turns keep the conversation flow's state, so a flow resumes on any worker.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 18:03:09.738236
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flow_state", sa.String(length=48), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.drop_column("flow_state")
