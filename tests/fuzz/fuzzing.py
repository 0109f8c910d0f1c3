"""Schemathesis over the four services' OpenAPI documents (tests/fuzz), on a stack started by the real
launcher (`e2e_stack`: every service a process of its own, real HTTP, an embedded Redis of its
own, SQLite or `JILU_TEST_DATABASE_URL`'s PostgreSQL), as a real user.

How much is generated is set from the environment, so `make test` runs a small, reproducible
pass and `make fuzz` a long one with the same code:

- `FUZZ_EXAMPLES` (default 4): Hypothesis examples per operation in the fuzzing phase;
- `FUZZ_SEED` (default 1): the seed, so a run sends the same requests again (Hypothesis's
  example database is off: nothing carries over from one run to the next);
- `FUZZ_COVERAGE` (default off): also Schemathesis's coverage phase (boundary values and
  wrong types of every parameter, deterministic; tens to hundreds of requests per operation);
- `FUZZ_STATEFUL` (default off): also the stateful phase (sequences that feed one answer's
  ids into the next request);
- `FUZZ_SERVICES` (default all four): a comma-separated subset of web, mobile, user, llm.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events
from schemathesis.engine.recorder import ScenarioRecorder
from schemathesis.schemas import BaseSchema

from tests.harness import Launcher

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "4"))
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "1"))
FUZZ_COVERAGE = os.environ.get("FUZZ_COVERAGE", "").lower() in ("1", "true", "yes", "on")
FUZZ_STATEFUL = os.environ.get("FUZZ_STATEFUL", "").lower() in ("1", "true", "yes", "on")
FUZZ_SERVICES = tuple(s.strip() for s in os.environ.get("FUZZ_SERVICES", "web,mobile,user,llm").split(",") if s.strip())

# The fuzzing user's password: not the one in the documents' examples, so the examples phase
# (which sends them as they are) cannot change it or log in as this user.
FUZZ_PASSWORD = "fuzz-Quince-8817"
CLIENT_TIMEOUT = 30.0
TOKEN_CHECK_SECONDS = 30
MESSAGE_CHARS = 600  # of a finding's message, in a failure and the summary


CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "content_type_conformance",
)


def schemathesis_config() -> SchemathesisConfig:
    """The five checks, positive and negative data, the example database off, the phases
    chosen above; as `st run` would with the same options."""
    return SchemathesisConfig.from_dict(
        {
            "seed": FUZZ_SEED,
            "workers": 1,
            "request-timeout": CLIENT_TIMEOUT,
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            # Strings of whole code points, as UTF-8 JSON carries them: Hypothesis's lone
            # surrogates are sent as `\udac5\udf91` escapes that JSON reads back as one
            # character, so a 200,000-"character" content the generator counted as too long
            # arrives as a valid one (a false `negative_data_rejection` at 200 examples).
            "generation": {"mode": "all", "max-examples": FUZZ_EXAMPLES, "database": "none", "codec": "utf-8"},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": FUZZ_COVERAGE},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": FUZZ_STATEFUL},
            },
            "operations": [
                {
                    # A push answers each item on its own line: a malformed item is `rejected`
                    # there (`invalid_item`, the field named) and the others still apply, so a
                    # batch with one is a 200 by design (SPEC: per-item results). A malformed
                    # body (not an object, `items` not a list, too many) is still a 422.
                    "include-path": "/api/v1/sync/push",
                    "include-method": "POST",
                    "checks": {"negative_data_rejection": {"enabled": False}},
                },
                {
                    # The record events never end: read the first event (`hello`) and go on,
                    # rather than wait for the request timeout on each case.
                    "include-path": "/api/v1/events",
                    "max-stream-events": 1,
                },
            ],
        }
    )


class FuzzUser:
    """A real account on the stack, registered and logged in through user_service's own flow
    (`POST /api/v1/auth/register`, `POST /api/v1/auth/token`). A fuzzed request may end its
    session (a logout, a changed username): Schemathesis asks for the token again after a 401
    (and every `TOKEN_CHECK_SECONDS`), and `token()` then checks it and renews it — by logging
    in again, or with a new account when the old one can no longer log in."""

    def __init__(self, user_url: str) -> None:
        self.client = httpx.Client(base_url=user_url, timeout=CLIENT_TIMEOUT)
        self.accounts = 0
        self.renewals = 0
        self.username = ""
        self.access_token = ""
        self.lock = threading.Lock()
        self._new_account()

    def _new_account(self) -> None:
        self.accounts += 1
        self.username = f"fuzzer{self.accounts}"
        response = self.client.post(
            "/api/v1/auth/register", json={"username": self.username, "password": FUZZ_PASSWORD}
        )
        assert response.status_code == 201, response.text
        assert self._log_in(), f"{self.username} cannot log in"

    def _log_in(self) -> bool:
        response = self.client.post("/api/v1/auth/token", data={"username": self.username, "password": FUZZ_PASSWORD})
        if response.status_code != 200:
            return False
        self.access_token = response.json()["access_token"]
        return True

    def _usable(self) -> bool:
        me = self.client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {self.access_token}"})
        return me.status_code == 200

    def token(self) -> str:
        with self.lock:
            if not self._usable():
                self.renewals += 1
                if not self._log_in() or not self._usable():
                    self._new_account()
            return self.access_token

    def register_with(self, schema: BaseSchema) -> None:
        user = self

        class FuzzUserAuth:
            def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
                return user.token()

            def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
                case.headers["Authorization"] = f"Bearer {data}"

        schema.auth(refresh_interval=TOKEN_CHECK_SECONDS, retry_on=[401])(FuzzUserAuth)

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class Finding:
    service: str
    operation: str  # `POST /api/v1/records`
    check: str  # `status_code_conformance`, ...; `error` when the run itself failed
    title: str  # `Undocumented status code`, ...
    reproduce: str  # a curl line, or the error

    def __str__(self) -> str:
        return f"{self.service} {self.operation}: {self.check} ({self.title})\n    {self.reproduce}"


@dataclass
class FuzzRun:
    """What one service's run sent, got and found."""

    service: str
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    findings: dict[tuple[str, str, str], Finding] = field(default_factory=dict)  # one per (operation, check, title)
    seconds: float = 0.0
    waited: dict[str, float] = field(default_factory=dict)  # seconds spent waiting for answers, by operation

    def run(self, schema: BaseSchema) -> None:
        """Run every enabled phase over `schema` (what `st run` does) and record it."""
        started = time.monotonic()
        for event in schemathesis.engine.from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                self._record(event.recorder)
            elif isinstance(event, events.NonFatalError):
                self._add(Finding(self.service, event.label, "error", type(event.value).__name__, str(event.value)))
            elif isinstance(event, events.FatalError):
                raise event.exception
        self.seconds = time.monotonic() - started

    def _record(self, recorder: ScenarioRecorder) -> None:
        for interaction in recorder.interactions.values():
            self.requests += 1
            if interaction.response is not None:
                self.statuses[interaction.response.status_code] += 1
                label = recorder.label
                self.waited[label] = self.waited.get(label, 0.0) + interaction.response.elapsed
        for case_id, checks in recorder.checks.items():
            for check in checks:
                if check.failure_info is None:
                    continue
                case = recorder.cases[case_id].value
                operation = f"{case.method.upper()} {case.operation.path}"
                failure = check.failure_info.failure
                lines = check.failure_info.code_sample.strip().splitlines()
                curl = next((line.strip() for line in lines if line.strip().startswith("curl")), lines[-1])
                message = " ".join(failure.message.split())[:MESSAGE_CHARS]
                self._add(Finding(self.service, operation, check.name, failure.title, f"{message}\n    {curl}"))

    def _add(self, finding: Finding) -> None:
        self.findings.setdefault((finding.operation, finding.check, finding.title), finding)

    def summary(self) -> str:
        statuses = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))
        by_check = Counter(finding.check for finding in self.findings.values())
        found = ", ".join(f"{check}: {n}" for check, n in sorted(by_check.items())) or "none"
        waits = sorted(self.waited.items(), key=lambda item: -item[1])[:3]
        slowest = ", ".join(f"{label} {seconds:.1f}s" for label, seconds in waits)
        return (
            f"{self.service}: {self.requests} requests in {self.seconds:.1f}s ({statuses}); findings: {found}; "
            f"longest waits: {slowest}"
        )


RUNS: list[FuzzRun] = []


def load_schema(stack: Launcher, user: FuzzUser, service: str) -> BaseSchema:
    if service not in FUZZ_SERVICES:
        pytest.skip(f"FUZZ_SERVICES={','.join(FUZZ_SERVICES)} leaves out {service}")
    schema = schemathesis.openapi.from_url(f"{stack.url(service)}/openapi.json", config=schemathesis_config())
    user.register_with(schema)
    return schema
