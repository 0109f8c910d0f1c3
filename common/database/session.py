"""The one transaction boundary: commit when the request succeeds, roll back when it fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


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


READ_ONLY_METHODS = {"GET", "HEAD", "OPTIONS"}


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency over the app's sessionmakers (made in the lifespan): requests that
    may write get a write transaction."""
    state = request.app.state
    maker = state.sessionmaker if request.method in READ_ONLY_METHODS else state.write_sessionmaker
    async with transaction(maker) as session:
        yield session
