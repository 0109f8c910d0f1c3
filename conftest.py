"""Fixtures for the whole suite: real Redis, real databases (SQLite always, PostgreSQL when
one answers; PostgreSQL only under `JILU_TEST_DATABASE_URL`, see tests/databases.py),
settings on a temporary data dir."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from redis.asyncio import Redis

from common.cache import create_redis
from common.cache.embedded import EmbeddedRedis, redis_answers
from common.config import JiluSettings
from common.database.migrate import upgrade_to_head
from tests.databases import (
    POSTGRES_ADMIN_URL,
    POSTGRES_ONLY,
    TEST_DATABASE_URL,
    postgres_admin,
    postgres_database,
    postgres_reachable,
)
from tests.support import free_port

# The machine's services, used when they answer (CI has them too); overridable.
MACHINE_REDIS_URL = os.environ.get("JILU_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


# Packages whose tests share one launched stack (package-scoped): `make test` runs each on one
# xdist worker (`--dist loadgroup`), since a stack per worker would cost more than it saves.
SHARED_STACK_PACKAGES = ("tests/web/", "tests/e2e/", "tests/fuzz/")
# In tests/e2e only the tests given its package stack (`jilu`) share it; the others start
# stacks of their own (per test, or per module: one module stays on one worker).
OWN_STACKS_PACKAGE, SHARED_STACK_FIXTURE = "tests/e2e/", "jilu"


def _stack_group(item: pytest.Item, package: str) -> str:
    if package != OWN_STACKS_PACKAGE or SHARED_STACK_FIXTURE in getattr(item, "fixturenames", ()):
        return package
    return item.nodeid.split("::", 1)[0]


# The fixtures that hand a test a database of the suite's (a module that overrides one with a
# SQLite-only stand-in says its tests do not depend on the database).
DATABASE_FIXTURES = ("database_url", "migrated_database_url", "postgres_url", "postgres_migrated")
# Launched processes whose tests are about the launcher (supervision, ports, Redis), not the
# database: they stay on SQLite in the data dir.
LAUNCHER_ONLY_PACKAGES = ("tests/launcher/",)


def _database_dependent(item: pytest.Item) -> bool:
    """A test on a launched stack (`e2e`) or given one of `DATABASE_FIXTURES`, unless it is
    about SQLite itself (marker `sqlite`: it pins `JILU_DATABASE_URL=""`) or pins the database
    itself (`parametrize("database_url", ["sqlite"], indirect=True)`: one is enough for it)."""
    if item.get_closest_marker("sqlite") is not None:
        return False
    if any(mark.args and mark.args[0] == "database_url" for mark in item.iter_markers("parametrize")):
        return False
    if item.get_closest_marker("e2e") is not None and not item.nodeid.startswith(LAUNCHER_ONLY_PACKAGES):
        return True
    fixtures = getattr(item, "_fixtureinfo", None)
    definitions = fixtures.name2fixturedefs if fixtures is not None else {}
    given = [definitions[name][-1] for name in DATABASE_FIXTURES if definitions.get(name)]
    return bool(given) and all(definition.baseid == "" for definition in given)


def pytest_configure(config: pytest.Config) -> None:
    if POSTGRES_ONLY and not asyncio.run(postgres_reachable()):
        raise pytest.UsageError(
            f"JILU_TEST_DATABASE_URL is set, but no PostgreSQL server answers at {TEST_DATABASE_URL}"
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for package in SHARED_STACK_PACKAGES:
            if item.nodeid.startswith(package):
                item.add_marker(pytest.mark.xdist_group(_stack_group(item, package)))
        # `database`: what `.ci/run` runs again under JILU_TEST_DATABASE_URL, less the tests
        # marked `postgres` (they ran on PostgreSQL in the first pass already).
        if _database_dependent(item):
            item.add_marker(pytest.mark.database)


@pytest.fixture(scope="session", autouse=True)
def cheap_argon2() -> Iterator[PasswordHash]:
    """argon2id with the smallest cost parameters for the in-process tests: the same code path
    and hash format, but ~0.1 ms instead of ~100 ms a hash, which most tests pay several times
    (register, log in). Launched services (tests/e2e, tests/web) keep the production cost, and
    tests/common/test_passwords.py checks that production's parameters are the strong ones:
    this fixture yields production's hasher."""
    from common.security import passwords

    cheap = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=64, parallelism=1),))
    kept = passwords._hasher, passwords._DUMMY_HASH
    passwords._hasher, passwords._DUMMY_HASH = cheap, cheap.hash("not anyone's password")
    yield kept[0]
    passwords._hasher, passwords._DUMMY_HASH = kept


def worker_index() -> int:
    """This pytest-xdist worker's number (0 for gw0, and for a run without workers)."""
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def worker_redis_url(base_url: str) -> str | None:
    """The machine-Redis database of this worker: worker N takes the configured database + N,
    so parallel workers never flush each other's keys; None when Redis's 16 run out."""
    url = urlsplit(base_url)
    database = int(url.path.lstrip("/") or 0) + worker_index()
    return None if database > 15 else urlunsplit(url._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: the machine's if one answers (a database per xdist worker), else an
    embedded one on a free port."""
    machine_url = worker_redis_url(MACHINE_REDIS_URL)
    if machine_url and redis_answers(machine_url):
        yield machine_url
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


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    return asyncio.run(postgres_reachable())


# Ends what a finished test left connected, then empties every table but Alembic's. No
# migration seeds rows, so this leaves the database as a fresh `upgrade head` does.
_EMPTY_POSTGRES = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid();
DO $$ BEGIN
EXECUTE (SELECT 'TRUNCATE ' || string_agg(format('%I', tablename), ', ') || ' RESTART IDENTITY CASCADE'
         FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version');
END $$;
"""


def _require_postgres(available: bool) -> None:
    if not available:
        pytest.skip(f"no PostgreSQL server answers at {POSTGRES_ADMIN_URL} (set JILU_TEST_POSTGRES_URL)")


# Under JILU_TEST_DATABASE_URL every database test runs on PostgreSQL only, including those
# parametrized to one database (`database_url` "sqlite", indirectly).
DATABASE_PARAMS = [pytest.param("postgresql", marks=pytest.mark.postgres)]
if not POSTGRES_ONLY:
    DATABASE_PARAMS.insert(0, pytest.param("sqlite"))


@pytest.fixture
def postgres_url(postgres_available: bool) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    _require_postgres(postgres_available)
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_migrated(postgres_available: bool) -> Iterator[str]:
    """A PostgreSQL database migrated to head once per session (and worker); `database_url`
    empties it for each test that asks for a migrated one."""
    _require_postgres(postgres_available)
    with postgres_database() as url:
        upgrade_to_head(url)
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session (and worker), to copy from."""
    path = tmp_path_factory.mktemp("template") / "jilu.db"
    upgrade_to_head(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=DATABASE_PARAMS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on SQLite (always; not under JILU_TEST_DATABASE_URL) and PostgreSQL (when
    a server answers): an empty
    database, or — when the test also asks for `migrated_database_url` — one migrated once per
    session and worker: a copy of the migrated SQLite file, or the migrated PostgreSQL database
    emptied (70 ms, where copying a template database took 320 ms and migrating 760 ms)."""
    migrated = "migrated_database_url" in request.fixturenames
    if request.param == "sqlite" and not POSTGRES_ONLY:
        path = tmp_path / "jilu.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    if not migrated:
        yield request.getfixturevalue("postgres_url")
        return
    url = request.getfixturevalue("postgres_migrated")
    postgres_admin(_EMPTY_POSTGRES, database=url.rsplit("/", 1)[1])
    yield url


@pytest.fixture
def migrated_database_url(database_url: str) -> str:
    """`database_url` with every migration applied, as the launcher leaves it."""
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
