"""Schemathesis 4 over the OpenAPI of web_service, mobile_service, user_service and llm_service,
as a real user (tests/fuzz/conftest.py): every operation answers without a server error, with a
documented status code, content type and body, and refuses data its document does not allow
(`not_a_server_error`, `status_code_conformance`, `response_schema_conformance`,
`content_type_conformance`, `negative_data_rejection`).

A failure lists each finding with a curl line that replays it; `make fuzz` runs the same with
many more examples and prints a summary (README, "Testing").
"""

from __future__ import annotations

import pytest

from tests.fuzz.fuzzing import RUNS, FuzzRun, FuzzUser, load_schema
from tests.harness import Launcher

# One launched stack for the package (the root conftest.py puts tests/fuzz/ in one xdist group).
pytestmark = [pytest.mark.fuzz, pytest.mark.e2e]


@pytest.mark.parametrize("service", ["web", "mobile", "user", "llm"])
def test_schemathesis_finds_nothing(service: str, fuzz_stack: Launcher, fuzz_user: FuzzUser) -> None:
    schema = load_schema(fuzz_stack, fuzz_user, service)
    run = FuzzRun(service)
    RUNS.append(run)
    run.run(schema)
    assert run.requests, f"no request was sent to {service}"
    assert not run.findings, f"{run.summary()}\n" + "\n".join(map(str, run.findings.values()))
