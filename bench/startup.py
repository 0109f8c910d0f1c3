"""Issue 2's benchmarks: cold start of the whole suite, and each service's idle memory.

- Cold start: `python main.py` on free ports with a new data dir (so the database is created
  and migrated, and the secret generated, as on a first start) until the launcher prints
  "all services are up" and every service answers `GET /health`. Median of 3 runs; target
  under 6 s on a 2-core machine once installed.
- Idle memory: after the last start-up and a few idle seconds, the resident set size of each
  service process in MB (2**20 bytes); target under 120 MB each.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench import Row
from bench._launcher import LauncherProcess

RUNS = 3
COLD_START_TARGET_S = 6.0
IDLE_SECONDS = 5.0
IDLE_RSS_TARGET_MB = 120.0
MB = 1024 * 1024


def _log(message: str) -> None:
    print(f"bench: startup: {message}", file=sys.stderr, flush=True)


def run() -> list[Row]:
    seconds: list[float] = []
    rss_mb: dict[str, float] = {}
    launcher_mb = 0.0
    redis = ""
    for attempt in range(1, RUNS + 1):
        with (
            tempfile.TemporaryDirectory(prefix="jilu-bench-") as tmp,
            LauncherProcess(Path(tmp) / "data") as jilu,
        ):
            redis = jilu.redis_description
            seconds.append(jilu.wait_up())
            _log(f"run {attempt}/{RUNS}: all four healthy after {seconds[-1]:.2f} s")
            if attempt == RUNS:
                time.sleep(IDLE_SECONDS)
                processes = jilu.service_processes()
                missing = sorted(set(jilu.services) - set(processes))
                if missing:
                    raise RuntimeError(f"no process found for {', '.join(missing)}")
                rss_mb = {name: processes[name].memory_info().rss / MB for name in jilu.services}
                launcher_mb = psutil.Process(jilu.process.pid).memory_info().rss / MB

    target = f"< {COLD_START_TARGET_S:g} s"
    rows = [Row("Redis used", redis)]
    rows += [
        Row(f"cold start, run {attempt}", f"{value:.2f} s", target, value < COLD_START_TARGET_S)
        for attempt, value in enumerate(seconds, start=1)
    ]
    median = statistics.median(seconds)
    rows.append(Row(f"cold start, median of {RUNS}", f"{median:.2f} s", target, median < COLD_START_TARGET_S))
    rss_target = f"< {IDLE_RSS_TARGET_MB:g} MB each"
    rows += [
        Row(f"idle RSS, {name}_service", f"{value:.1f} MB", rss_target, value < IDLE_RSS_TARGET_MB)
        for name, value in rss_mb.items()
    ]
    rows.append(Row("idle RSS, launcher (main.py)", f"{launcher_mb:.1f} MB"))
    return rows
