"""The real thing: `python main.py` started as a process on free ports, a temporary data dir
and a Redis of its own, reached over HTTP (`e2e_stack`, tests/e2e/stack.py). It is stopped in
teardown whatever happened.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import e2e_stack
from tests.harness import Launcher


@pytest.fixture(scope="package")
def jilu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    """Every service, started by the real launcher, on an empty database and Redis.

    The stack outlives single tests, so it has a Redis of its own: on the tests' database its
    analysis workers would join the same consumer group as the workers other tests start, and
    take their jobs (then not find the records, which are in other databases). It stops when
    the e2e tests are done, not at the end of the whole run."""
    with e2e_stack(tmp_path_factory.mktemp("jilu-e2e")) as stack:
        yield stack
