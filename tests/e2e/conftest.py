"""The real thing: `python main.py` started as a process on free ports, a temporary data dir
and a Redis database of its own, reached over HTTP. It is stopped in teardown whatever happened.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.e2e.processes import Jilu, launched


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
    with launched(next_database(redis_url), tmp_path_factory.mktemp("jilu-e2e") / "data") as stack:
        yield stack
