"""Issue 11's last row: the wall time of the whole test suite, as `make test` runs it.

Runs `make test` (the README's command, so its flags have one home: the Makefile) in a child
process from the project root and times it from start to exit; target under 10 minutes on a
2-core machine. The row also says how many workers ran and whether the suite passed: a red run's
time is no measure. JILU_TEST_REDIS_URL, when set, chooses the suite's Redis as for `make test`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from bench import Row

ROOT = Path(__file__).resolve().parents[1]
TARGET_MINUTES = 10.0
COMMAND = ("make", "test")


def _summary(output: str) -> str:
    """pytest's last line, e.g. `1710 passed, 1 skipped in 512.3s`, without its `=` rule."""
    lines = [line.strip("= ") for line in output.splitlines() if re.search(r"\b(passed|failed|error)", line)]
    return lines[-1] if lines else "no summary"


def run() -> list[Row]:
    print(f"bench: suite: {' '.join(COMMAND)} (several minutes)", file=sys.stderr, flush=True)
    started = time.perf_counter()
    finished = subprocess.run(COMMAND, cwd=ROOT, capture_output=True, text=True, env=os.environ.copy(), check=False)
    minutes = (time.perf_counter() - started) / 60
    summary = _summary(finished.stdout)
    if finished.returncode != 0:
        return [Row("make test: wall time", f"{minutes:.1f} min, but the suite failed ({summary})", ok=False)]
    return [
        Row(
            f"make test: wall time ({os.cpu_count()} cores)",
            f"{minutes:.1f} min ({summary})",
            f"< {TARGET_MINUTES:.0f} min",
            minutes < TARGET_MINUTES,
        )
    ]
