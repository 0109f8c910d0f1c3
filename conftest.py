"""Fixtures for the whole suite: real Redis, real databases (SQLite always, PostgreSQL when
one answers), settings on a temporary data dir."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from common.cache import create_redis
from common.cache.embedded import EmbeddedRedis, redis_answers
from common.config import JiluSettings
from common.database.migrate import upgrade_to_head
from tests.support import free_port

# The machine's services, used when they answer (CI has them too); overridable.
MACHINE_REDIS_URL = os.environ.get("JILU_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
POSTGRES_ADMIN_URL = os.environ.get("JILU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: the machine's if one answers, else an embedded one on a free port."""
    if redis_answers(MACHINE_REDIS_URL):
        yield MACHINE_REDIS_URL
        return
    server = EmbeddedRedis(f"redis://127.0.0.1:{free_port()}/0", tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client on an emptied test database."""
    client = create_redis(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


async def _postgres_reachable() -> bool:
    import asyncpg

    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=2)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await connection.close()
    return True


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    return asyncio.run(_postgres_reachable())


@pytest.fixture
def postgres_url(postgres_available: bool) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    if not postgres_available:
        pytest.skip(f"no PostgreSQL server answers at {POSTGRES_ADMIN_URL} (set JILU_TEST_POSTGRES_URL)")
    import asyncpg

    name = f"jilu_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite (always) and PostgreSQL (when a server answers)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'jilu.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def migrated_database_url(database_url: str) -> str:
    """`database_url` with every migration applied, as the launcher leaves it."""
    await asyncio.to_thread(upgrade_to_head, database_url)
    return database_url


@pytest.fixture
def make_settings(tmp_path: Path, redis_url: str) -> Callable[..., Any]:
    """Build a service's settings on a temporary data dir and the test Redis, ignoring the
    developer's own `.env` files; keyword arguments override fields."""

    def build(settings_cls: type[JiluSettings] = JiluSettings, **overrides: Any) -> Any:
        values: dict[str, Any] = {"env": "test", "data_dir": tmp_path / "data", "redis_url": redis_url}
        values.update(overrides)
        return settings_cls(_env_file=None, **values)  # type: ignore[call-arg]

    return build
