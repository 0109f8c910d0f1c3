"""The real thing: `python main.py` started as a process on free ports, a temporary data dir
and a Redis database of its own, reached over HTTP. It is stopped in teardown whatever happened.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis as sync_redis

from common.config import SERVICE_NAMES
from tests.e2e.processes import E2E_RATES, Jilu, clean_env, distinct_free_ports, start_process


def next_database(redis_url: str) -> str:
    """The same Redis server, the next of its 16 databases."""
    url = urlsplit(redis_url)
    current = int(url.path.strip("/") or 0)
    return urlunsplit(url._replace(path=f"/{(current + 1) % 16}"))


@pytest.fixture(scope="package")
def jilu(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jilu]:
    """Every service, started by the real launcher, on an empty database and Redis.

    The stack outlives single tests, so it gets a Redis database of its own: on the tests'
    database its analysis workers would join the same consumer group as the workers other
    tests start, and take their jobs (then not find the records, which are in other
    databases). It stops when the e2e tests are done, not at the end of the whole run."""
    redis_url = next_database(redis_url)
    sync_redis.Redis.from_url(redis_url).flushdb()
    data_dir = tmp_path_factory.mktemp("jilu-e2e") / "data"
    ports = dict(zip(SERVICE_NAMES, distinct_free_ports(len(SERVICE_NAMES)), strict=True))
    secret_key = "e2e-" + os.urandom(24).hex()
    env = clean_env(
        JILU_ENV="development",
        JILU_SERVICES=",".join(SERVICE_NAMES),
        JILU_DATA_DIR=str(data_dir),
        JILU_DATABASE_URL="",
        JILU_REDIS_URL=redis_url,
        JILU_EMBEDDED_REDIS="never",
        JILU_SECRET_KEY=secret_key,
        JILU_LLM_PROVIDER="local",
        **{f"JILU_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        **E2E_RATES,
    )
    launcher = start_process("launcher", [sys.executable, "main.py"], env)
    try:
        launcher.wait_for_line("jilu: all services are up")
        launcher.record_descendants()
        yield Jilu(launcher, ports, data_dir, redis_url, secret_key)
    finally:
        launcher.stop()
