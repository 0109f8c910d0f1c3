"""The one transaction boundary: commit when the work succeeds, roll back when it fails
(a request's session is `common.deps.SessionDep`, on this)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@dataclass(frozen=True)
class Sessions:
    """An app's two sessionmakers (see `common.app`), for work outside a request (background
    jobs, schedulers): `read` for reads, `write` for transactions that will write."""

    read: async_sessionmaker[AsyncSession]
    write: async_sessionmaker[AsyncSession]


@asynccontextmanager
async def transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session that commits on success and rolls back on any error; services only `flush()`."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
