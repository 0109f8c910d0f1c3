"""Alembic migrations, as the launcher applies them before the services start."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import inspect, text

from common.database import create_engine
from common.database.migrate import current_revision, head_revision, upgrade_to_head
from common.database.models import metadata


async def upgrade(database_url: str) -> None:
    await asyncio.to_thread(upgrade_to_head, database_url)  # Alembic runs its own event loop


async def test_upgrade_brings_an_empty_database_to_head_and_may_run_twice(database_url: str) -> None:
    head = head_revision()
    assert head is not None
    await upgrade(database_url)
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        assert await current_revision(engine) == head
        async with engine.connect() as connection:
            versions = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
            tables = set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()
    assert versions == [head]
    # Every model's table comes from a migration (tables of test modules aside).
    assert {name for name in metadata.tables if not name.startswith("test_")} <= tables


async def test_upgrade_creates_the_sqlite_file_and_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "data" / "jilu.db"
    await upgrade(f"sqlite+aiosqlite:///{path}")
    assert path.is_file()
