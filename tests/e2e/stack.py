"""The stack the end-to-end and browser tests share (tests/e2e, tests/web): every service
started by the real launcher (tests/harness.py), with settings fit for tests."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from common.cache.embedded import EmbeddedRedis
from common.config import SERVICE_NAMES
from tests.databases import launched_database_url
from tests.harness import Launcher, free_ports, launched

# Generous budgets for what the end-to-end tests do from one address; the per-username login
# limit keeps its default (10/minute), which the brute-force tests meet.
E2E_RATES = {
    "JILU_RATE_LOGIN_ADDRESS": "10000/minute",
    "JILU_RATE_REGISTER_ADDRESS": "10000/minute",
    "JILU_RATE_USER": "100000/minute",
}


@contextmanager
def e2e_stack(
    base: Path,
    args: Sequence[str] = (),
    *,
    redis_url: str | None = None,
    **settings: str,
) -> Iterator[Launcher]:
    """Every service, started by the real launcher on free ports, with the local LLM provider,
    `E2E_RATES` and a secret key of its own (`jilu.env["JILU_SECRET_KEY"]`), on an empty data
    dir (`base/data`) and an embedded Redis of its own (`base/redis`, on a free port: nothing of
    anyone else's on the machine's Redis is touched, and no other stack's workers share its
    queues). `settings` add or override JILU_ variables, `args` go to `main.py` (e.g.
    `--max-crashes`).
    The database is SQLite in the data dir, or under `JILU_TEST_DATABASE_URL` a PostgreSQL
    database of its own (tests/databases.py). Stopped, Redis too, on exit (the database dropped).
    With `redis_url` the stack uses that Redis instead: one the caller starts and stops (a test
    that restarts Redis), or the launcher's own (with `JILU_EMBEDDED_REDIS=always`)."""
    redis = None if redis_url else EmbeddedRedis(f"redis://127.0.0.1:{free_ports(1)[0]}/0", base / "redis").start()
    try:
        with launched_database_url() as database_url:
            defaults = {
                "JILU_ENV": "development",
                "JILU_SERVICES": ",".join(SERVICE_NAMES),
                "JILU_DATABASE_URL": database_url,
                "JILU_EMBEDDED_REDIS": "never",
                "JILU_SECRET_KEY": "e2e-" + os.urandom(24).hex(),
                "JILU_LLM_PROVIDER": "local",
                **E2E_RATES,
            }
            url = redis_url or (redis.url if redis else "")
            with launched(base / "data", url, {**defaults, **settings}, args) as jilu:
                yield jilu
    finally:
        if redis is not None:
            redis.stop()
