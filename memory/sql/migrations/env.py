"""Alembic's entry point for Heartline's migrations.

Migrations run through `memory.sql.schema`, which hands over a connection
already inside a transaction (and, on PostgreSQL, holding the schema lock);
there is no alembic.ini to run this file another way.
"""

from __future__ import annotations

from alembic import context

from memory.sql.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `heartline db upgrade`, not the alembic CLI")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite alters a table by copying it; batch mode writes migrations that way.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
