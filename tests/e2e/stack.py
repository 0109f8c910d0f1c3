"""The stack the end-to-end and browser tests share (tests/e2e, tests/web): every service
started by the real launcher (tests/harness.py), with settings fit for tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common.cache.embedded import EmbeddedRedis
from common.config import SERVICE_NAMES
from tests.harness import Launcher, free_ports, launched

# Generous budgets for what the end-to-end tests do from one address; the per-username login
# limit keeps its default (10/minute), which the brute-force tests meet.
E2E_RATES = {
    "JILU_RATE_LOGIN_ADDRESS": "10000/minute",
    "JILU_RATE_REGISTER_ADDRESS": "10000/minute",
    "JILU_RATE_USER": "100000/minute",
}


@contextmanager
def e2e_stack(base: Path, **settings: str) -> Iterator[Launcher]:
    """Every service, started by the real launcher on free ports, with the local LLM provider,
    `E2E_RATES` and a secret key of its own (`jilu.env["JILU_SECRET_KEY"]`), on an empty data
    dir (`base/data`) and an embedded Redis of its own (`base/redis`, on a free port: nothing of
    anyone else's on the machine's Redis is touched, and no other stack's workers share its
    queues). `settings` add or override JILU_ variables. Stopped, Redis too, on exit."""
    redis = EmbeddedRedis(f"redis://127.0.0.1:{free_ports(1)[0]}/0", base / "redis").start()
    try:
        defaults = {
            "JILU_ENV": "development",
            "JILU_SERVICES": ",".join(SERVICE_NAMES),
            "JILU_DATABASE_URL": "",
            "JILU_EMBEDDED_REDIS": "never",
            "JILU_SECRET_KEY": "e2e-" + os.urandom(24).hex(),
            "JILU_LLM_PROVIDER": "local",
            **E2E_RATES,
        }
        with launched(base / "data", redis.url, settings={**defaults, **settings}) as jilu:
            yield jilu
    finally:
        redis.stop()
