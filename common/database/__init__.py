"""SQLAlchemy 2 async database layer shared by every service."""

from common.database.base import Base, TimestampMixin, UTCDateTime, utcnow
from common.database.engine import create_engine, create_sessionmaker, create_write_engine, is_sqlite
from common.database.ids import new_id, uuid7
from common.database.session import Sessions, transaction

__all__ = [
    "Base",
    "Sessions",
    "TimestampMixin",
    "UTCDateTime",
    "create_engine",
    "create_sessionmaker",
    "create_write_engine",
    "is_sqlite",
    "new_id",
    "transaction",
    "utcnow",
    "uuid7",
]
