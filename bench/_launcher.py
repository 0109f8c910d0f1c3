"""The real launcher (`python main.py`) for benchmarks: tests/harness.py's `Launcher` on free
ports and a temporary data dir, with nothing left running afterwards.

Redis is the machine's at 127.0.0.1:6379 when one answers (database 14, emptied for each
launch: the tests use their own and empty them), otherwise the launcher embeds one on a free
port, as it would for a new user.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from redis import Redis

from common.cache.embedded import redis_answers
from common.config import SERVICE_NAMES
from tests.harness import Launcher, free_ports

# JILU_BENCH_REDIS_URL: another database (or server), e.g. while database 14 is in use.
MACHINE_REDIS_URL = os.environ.get("JILU_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


class LauncherProcess(Launcher):
    """`python main.py` with `services` on the benchmarks' Redis, started at once; use it as a
    context manager so it is always stopped."""

    def __init__(
        self, data_dir: Path, services: tuple[str, ...] = SERVICE_NAMES, extra_env: dict[str, str] | None = None
    ) -> None:
        self.embedded_redis = not redis_answers(MACHINE_REDIS_URL)
        if not self.embedded_redis:
            # Empty, as the tests empty theirs: a run cut short leaves streams and pending jobs
            # (thousands of record events for a database that is gone) that the next run's
            # workers would spend minutes reclaiming.
            with Redis.from_url(MACHINE_REDIS_URL) as client:
                client.flushdb()
        redis_url = f"redis://127.0.0.1:{free_ports(1)[0]}/0" if self.embedded_redis else MACHINE_REDIS_URL
        settings = {"JILU_SERVICES": ",".join(services), "JILU_EMBEDDED_REDIS": "auto", **(extra_env or {})}
        # Its own session: a Ctrl-C at the terminal reaches the benchmark, which then stops the
        # launcher properly, instead of reaching every process at once. A long run prints a lot:
        # only the last lines are kept, for an error message.
        super().__init__(data_dir, redis_url, settings=settings, keep_lines=200, new_session=True)

    @property
    def redis_description(self) -> str:
        if self.embedded_redis:
            return f"embedded by the launcher at {self.redis_url}"
        return f"the machine's at {MACHINE_REDIS_URL}"

    def wait_up(self, timeout: float = 60.0) -> float:
        """Seconds from start until the launcher said every service is up and every service
        answers `GET /health`."""
        self.wait_until_up(timeout=timeout)
        return time.perf_counter() - self.started_at

    def close(self) -> list[str]:
        leftovers = super().close()
        for cmdline in leftovers:
            print(f"bench: killed {cmdline!r}, which the launcher left behind", file=sys.stderr)
        return leftovers
