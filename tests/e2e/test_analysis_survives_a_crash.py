"""Nothing acknowledged is lost: an analysis job in flight when llm_service is killed is
finished after the launcher restarts it. Real launcher, real processes, the fake provider
(a real HTTP server speaking the OpenAI wire format) as the only stand-in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llm_service.tests.fake_provider import FakeProvider, Reply, run_fake_provider
from tests.e2e.stack import e2e_stack
from tests.support import signed_up, wait_until

pytestmark = pytest.mark.e2e

ANALYSIS = json.dumps({"title": "Budget meeting", "summary": "Finance and marketing met.", "tags": ["budget"]})


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with run_fake_provider() as provider:
        yield provider


def test_a_job_in_flight_when_llm_service_is_killed_is_finished_after_the_restart(
    fake: FakeProvider, tmp_path: Path
) -> None:
    fake.script(Reply(text=ANALYSIS, delay=60))  # the first call hangs until its process dies
    fake.default_reply = Reply(text=ANALYSIS)
    settings = {
        "JILU_SERVICES": "user,mobile,llm",
        **fake.launch_settings(),
    }
    with (
        e2e_stack(tmp_path, **settings) as launcher,
        httpx.Client(base_url=launcher.url("mobile"), timeout=30) as mobile,
    ):
        headers = signed_up(mobile, "alice")
        created = mobile.post("/api/v1/records", headers=headers, json={"content": "Budget meeting notes."})
        assert created.status_code == 201
        record_id = created.json()["id"]

        assert wait_until(lambda: len(fake.chat_requests) >= 1, timeout=60), "the job never reached the provider"
        doomed = launcher.service_processes()["llm"]
        doomed.kill()  # mid-job: the provider has the request, no answer came back

        def analysed() -> bool:
            record = mobile.get(f"/api/v1/records/{record_id}", headers=headers).json()
            return record["ai"]["status"] == "done"

        assert wait_until(analysed, timeout=120), f"the job was lost with the process:\n{launcher.output}"
        record = mobile.get(f"/api/v1/records/{record_id}", headers=headers).json()
        assert record["ai"]["title"] == "Budget meeting"
        assert launcher.service_processes()["llm"].pid != doomed.pid
        assert len(fake.chat_requests) >= 2  # the lost call, then the one after the restart
