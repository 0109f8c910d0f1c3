"""The stack, user and summary of tests/fuzz (the run itself: fuzzing.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis

from tests.e2e.stack import e2e_stack
from tests.fuzz.fuzzing import CHECKS, FUZZ_COVERAGE, FUZZ_EXAMPLES, FUZZ_SEED, FUZZ_STATEFUL, RUNS, FuzzUser
from tests.harness import Launcher


@pytest.fixture(scope="package")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    with e2e_stack(tmp_path_factory.mktemp("jilu-fuzz")) as stack:
        yield stack


@pytest.fixture(scope="package")
def fuzz_user(fuzz_stack: Launcher) -> Iterator[FuzzUser]:
    user = FuzzUser(fuzz_stack.url("user"))
    try:
        yield user
    finally:
        user.close()


@pytest.fixture(scope="package", autouse=True)
def fuzz_summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the package's runs, their summary on the terminal (where there is one: not on an
    xdist worker): `make fuzz`'s report."""
    yield
    reporter: Any = request.config.pluginmanager.get_plugin("terminalreporter")
    if not RUNS or reporter is None:
        return
    phases = "examples, fuzzing" + (", coverage" if FUZZ_COVERAGE else "") + (", stateful" if FUZZ_STATEFUL else "")
    lines = [
        f"schemathesis {schemathesis.__version__}; phases: {phases}; {FUZZ_EXAMPLES} examples per operation; "
        f"seed {FUZZ_SEED}; checks: {', '.join(CHECKS)}",
        *(run.summary() for run in RUNS),
    ]
    findings = [finding for run in RUNS for finding in run.findings.values()]
    lines.append(f"{len(findings)} findings")
    lines.extend(map(str, findings))
    capture: Any = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():  # a fixture's teardown output is captured
        reporter.write_line("")
        reporter.section("fuzz: schemathesis")
        for line in lines:
            reporter.write_line(line)
