"""SQL implementations of the memory seams (SQLAlchemy 2 async; SQLite or PostgreSQL).

Use::

    engine = open_engine("sqlite+aiosqlite:///heartline.db")
    await upgrade_schema(engine)
    async with SqlConversationStore(engine) as store:
        ...
    await engine.dispose()
"""

from memory.sql.engine import SUPPORTED_SCHEMES, open_engine
from memory.sql.handoffs import SqlHandoffOutbox
from memory.sql.ledger import SqlTurnLedger
from memory.sql.schema import downgrade_schema, schema_revision, upgrade_schema
from memory.sql.store import SqlConversationStore
from memory.sql.writer import WriterConfig, WriterStats

__all__ = [
    "SUPPORTED_SCHEMES",
    "SqlConversationStore",
    "SqlHandoffOutbox",
    "SqlTurnLedger",
    "WriterConfig",
    "WriterStats",
    "downgrade_schema",
    "open_engine",
    "schema_revision",
    "upgrade_schema",
]
