"""Nothing acknowledged is lost: an analysis job in flight when llm_service is killed is
finished after the launcher restarts it. Real launcher, real processes, the fake provider
(a real HTTP server speaking the OpenAI wire format) as the only stand-in.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator

import httpx
import psutil
import pytest
import redis as sync_redis

from common.config import SERVICE_NAMES
from llm_service.tests.fake_provider import FakeProvider, Reply, run_fake_provider
from tests.e2e.processes import E2E_RATES, clean_env, distinct_free_ports, start_process
from tests.support import wait_until

pytestmark = pytest.mark.e2e

PASSWORD = "plum-Lantern-42"
ANALYSIS = json.dumps({"title": "Budget meeting", "summary": "Finance and marketing met.", "tags": ["budget"]})


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with run_fake_provider() as provider:
        yield provider


def _llm_child(launcher_pid: int) -> psutil.Process:
    for child in psutil.Process(launcher_pid).children():
        if any(part.endswith("llm_service/main.py") for part in child.cmdline()):
            return child
    raise AssertionError("no llm_service child")


def test_a_job_in_flight_when_llm_service_is_killed_is_finished_after_the_restart(
    fake: FakeProvider, redis_url: str, tmp_path
) -> None:
    sync_redis.Redis.from_url(redis_url).flushdb()
    fake.script(Reply(text=ANALYSIS, delay=60))  # the first call hangs until its process dies
    fake.default_reply = Reply(text=ANALYSIS)
    ports = dict(zip(SERVICE_NAMES, distinct_free_ports(len(SERVICE_NAMES)), strict=True))
    env = clean_env(
        JILU_SERVICES="user,mobile,llm",
        JILU_DATA_DIR=str(tmp_path / "data"),
        JILU_DATABASE_URL="",
        JILU_REDIS_URL=redis_url,
        JILU_EMBEDDED_REDIS="never",
        JILU_SECRET_KEY="e2e-" + os.urandom(24).hex(),
        JILU_LLM_PROVIDER="custom",
        JILU_LLM_BASE_URL=fake.base_url,
        JILU_LLM_MODEL="fake-model",
        JILU_LLM_API_KEY="sk-e2e-fake",
        JILU_LLM_ALLOWED_HOSTS=fake.host_port,
        **{f"JILU_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        **E2E_RATES,
    )
    launcher = start_process("launcher", [sys.executable, "main.py"], env)
    try:
        launcher.wait_for_line("jilu: all services are up")
        mobile = httpx.Client(base_url=f"http://127.0.0.1:{ports['mobile']}", timeout=30)
        mobile.post("/api/v1/auth/register", json={"username": "alice", "password": PASSWORD}).raise_for_status()
        token = mobile.post("/api/v1/auth/token", data={"username": "alice", "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        created = mobile.post("/api/v1/records", headers=headers, json={"content": "Budget meeting notes."})
        assert created.status_code == 201
        record_id = created.json()["id"]

        assert wait_until(lambda: len(fake.chat_requests) >= 1, timeout=60), "the job never reached the provider"
        doomed = _llm_child(launcher.process.pid)
        doomed.kill()  # mid-job: the provider has the request, no answer came back

        def analysed() -> bool:
            record = mobile.get(f"/api/v1/records/{record_id}", headers=headers).json()
            return record["ai"]["status"] == "done"

        assert wait_until(analysed, timeout=120), f"the job was lost with the process:\n{launcher.output}"
        record = mobile.get(f"/api/v1/records/{record_id}", headers=headers).json()
        assert record["ai"]["title"] == "Budget meeting"
        assert _llm_child(launcher.process.pid).pid != doomed.pid
        assert len(fake.chat_requests) >= 2  # the lost call, then the one after the restart
    finally:
        launcher.stop()
