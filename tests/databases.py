"""The tests' PostgreSQL databases: made on a server with an admin connection, dropped after.

Two settings choose the server (both an admin URL, `postgresql://user@host:port/admin-db`):

- `JILU_TEST_POSTGRES_URL` (default `postgresql://postgres@127.0.0.1:5432/test`): where the
  database tests also run on PostgreSQL, beside SQLite, when it answers;
- `JILU_TEST_DATABASE_URL`, unset by default: when set, the whole suite runs on PostgreSQL at
  that server instead — the database tests on PostgreSQL only, and every launched stack
  (`tests/e2e/stack.py`, `tests/web`) on a fresh database of its own (`launched_database_url`)
  that its launcher migrates at start, as in production, and that is dropped after it.
  `make test-postgres` and the second pass of `.ci/run` set it.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
# Set: everything on PostgreSQL at this server (see the module's docstring).
TEST_DATABASE_URL = os.environ.get("JILU_TEST_DATABASE_URL", "").strip()
POSTGRES_ONLY = bool(TEST_DATABASE_URL)
POSTGRES_ADMIN_URL = TEST_DATABASE_URL or os.environ.get("JILU_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)

if POSTGRES_ONLY and urlsplit(TEST_DATABASE_URL).scheme not in ("postgresql", "postgres"):
    raise ValueError(
        f"JILU_TEST_DATABASE_URL must be a PostgreSQL admin URL (postgresql://user@host:port/db), "
        f"not {TEST_DATABASE_URL!r}"
    )


def _url_of(database: str | None) -> str:
    """The admin URL, or the same server's `database`."""
    return POSTGRES_ADMIN_URL if database is None else f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{database}"


async def postgres_reachable() -> bool:
    """Whether the admin URL accepts a connection (within 2 s)."""
    import asyncpg

    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=2)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await connection.close()
    return True


def postgres_admin(sql: str, database: str | None = None) -> None:
    """Run `sql` as the admin user, on the admin database or on `database`."""
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(_url_of(database))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (its SQLAlchemy URL, asyncpg), dropped on exit with
    whatever is still connected to it."""
    name = f"jilu_test_{uuid.uuid4().hex[:12]}"
    postgres_admin(f'CREATE DATABASE "{name}"')
    try:
        yield (
            _url_of(name)
            .replace("postgresql://", "postgresql+asyncpg://", 1)
            .replace("postgres://", "postgresql+asyncpg://", 1)
        )
    finally:
        postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def launched_database_url() -> Iterator[str]:
    """`JILU_DATABASE_URL` for a launched stack: "" (SQLite in its data dir), or under
    `JILU_TEST_DATABASE_URL` a fresh PostgreSQL database, dropped when the stack is done."""
    if not POSTGRES_ONLY:
        yield ""
        return
    with postgres_database() as url:
        yield url
