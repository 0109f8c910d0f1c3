"""The launcher's tests run the real `python main.py` (tests/harness.py's `Launcher`) on free
ports and a temporary data dir, and make sure nothing it started outlives the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import Launcher


@pytest.fixture
def launch(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., Launcher]]:
    """Start `python main.py`; every launcher started is stopped (and its children killed) after
    the test, whatever happened.

    `launch(*args, ports=..., data_dir=..., redis_at=..., env={...})`: by default free ports,
    `tmp_path / "data"`, and the machine's Redis (or the suite's embedded one). Every process
    under it is recorded as it appears, so that a test can check none is left.
    """
    runs: list[Launcher] = []

    def start(
        *args: str,
        ports: dict[str, int] | None = None,
        data_dir: Path | None = None,
        redis_at: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Launcher:
        settings = {"JILU_EMBEDDED_REDIS": "auto", "JILU_DATABASE_URL": "", **(env or {})}
        run = Launcher(
            data_dir or tmp_path / "data",
            redis_at or redis_url,
            args,
            ports=ports,
            settings=settings,
            watch_descendants=True,
        )
        runs.append(run)
        return run

    try:
        yield start
    finally:
        for run in runs:
            run.close()
