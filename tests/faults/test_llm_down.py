"""llm_service down (issue 13, fault tests): records, attachments, search, sync and export keep
working on both public ports; chat and the other AI routes answer 503 `service_unavailable`
with `Retry-After` (never a 500, never a hang); readiness names llm_service; and when it comes
back, the analyses and extractions owed for what was written meanwhile are each done once.

The real launcher starts web, user and mobile (`JILU_SERVICES` without llm, its port known to
them and unused); a second launcher then starts llm_service alone on the same data dir, Redis
and port, as an operator would. The LLM provider is the fake one.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_service.tests.fake_provider import FakeProvider, Reply, run_fake_provider
from tests.e2e.stack import e2e_stack
from tests.faults.jobs import assert_each_job_done_once, new_word, queues_drained
from tests.harness import Launcher
from tests.support import wait_until

pytestmark = pytest.mark.e2e

PASSWORD = "plum-Lantern-42"
ANALYSIS = json.dumps({"title": "Budget", "summary": "Money talk.", "tags": ["budget"]})
CATCH_UP_WITHIN = 90.0  # seconds; bounds a wait, asserts nothing about speed


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with run_fake_provider() as provider:
        provider.default_reply = Reply(text=ANALYSIS)
        yield provider


def provider_settings(fake: FakeProvider) -> dict[str, str]:
    return {
        **fake.launch_settings(),
        "JILU_ANALYSIS_RETRY_SECONDS": "0.5",
        "JILU_SCHEDULER_INTERVAL_SECONDS": "0",  # no digest run: only analyses reach the provider
    }


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {
        "error": "service_unavailable",
        "detail": "llm_service is unavailable; try again shortly",
    }
    assert int(response.headers["retry-after"]) >= 1


def read_lines(launcher: Launcher, attachment_id: str) -> list[str]:
    return [line for line in launcher.service_lines("llm") if f"read attachment {attachment_id} with" in line]


def test_records_work_on_both_ports_while_llm_service_is_down_and_analysis_catches_up(
    fake: FakeProvider, tmp_path: Path
) -> None:
    settings: dict[str, Any] = {**provider_settings(fake), "JILU_SERVICES": "web,user,mobile"}
    with e2e_stack(tmp_path, **settings) as jilu, httpx.Client(timeout=30) as http:
        ports = {port: jilu.url(port) for port in ("mobile", "web")}
        http.post(f"{ports['mobile']}/api/v1/auth/register", json={"username": "alice", "password": PASSWORD})
        token = http.post(f"{ports['mobile']}/api/v1/auth/token", data={"username": "alice", "password": PASSWORD})
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

        created: list[str] = []
        words: dict[str, str] = {}
        for port, url in ports.items():
            for _ in range(2):
                word = new_word()
                response = http.post(f"{url}/api/v1/records", headers=headers, json={"content": f"budget {word}"})
                assert response.status_code == 201, (port, response.text)
                assert response.json()["ai"]["status"] == "pending"
                created.append(response.json()["id"])
                words[created[-1]] = word
        files = {"file": ("notes.txt", b"pelican budget notes", "text/plain")}
        uploaded = http.post(f"{ports['web']}/api/v1/records/{created[0]}/attachments", headers=headers, files=files)
        assert uploaded.status_code == 201, uploaded.text
        attachment_id = uploaded.json()["id"]

        for port, url in ports.items():
            listed = http.get(f"{url}/api/v1/records", headers=headers)
            assert listed.status_code == 200 and {r["id"] for r in listed.json()["items"]} == set(created), port
            found = http.get(f"{url}/api/v1/search", params={"q": "budget"}, headers=headers)
            assert found.status_code == 200 and {h["record"]["id"] for h in found.json()["items"]} == set(created)
            changes = http.get(f"{url}/api/v1/sync/changes", params={"since": 0}, headers=headers)
            assert changes.status_code == 200 and {c["id"] for c in changes.json()["changes"]} == set(created)
            export = http.get(f"{url}/api/v1/export", headers=headers)
            assert export.status_code == 200, (port, export.text)
            names = zipfile.ZipFile(io.BytesIO(export.content)).namelist()
            assert {f"records/{record_id}.md" for record_id in created} <= set(names), (port, names)
            version = http.get(f"{url}/api/v1/records/{created[1]}", headers=headers).json()["version"]
            edited = http.patch(
                f"{url}/api/v1/records/{created[1]}", headers=headers, json={"title": port, "version": version}
            )
            assert edited.status_code == 200, (port, edited.text)

            # What needs llm_service says so, the same way on every port and route.
            assert_unavailable(http.post(f"{url}/api/v1/chat/conversations", headers=headers, json={}))
            assert_unavailable(http.get(f"{url}/api/v1/chat/conversations", headers=headers))
            assert_unavailable(http.get(f"{url}/api/v1/llm/usage", headers=headers))
            assert_unavailable(http.post(f"{url}/api/v1/records/{created[0]}/analyze", headers=headers))
            ready = http.get(f"{url}/health/ready")
            assert ready.status_code == 503 and ready.json()["detail"] == "not ready: llm_service", ready.text
        assert fake.chat_requests == []

        llm_settings = {key: value for key, value in jilu.env.items() if key.startswith("JILU_")}
        llm_settings["JILU_SERVICES"] = "llm"
        with Launcher(jilu.data_dir, jilu.redis_url, ["--no-migrate"], ports=jilu.ports, settings=llm_settings) as llm:
            llm.wait_until_up()

            def caught_up() -> bool:
                records = [http.get(f"{ports['mobile']}/api/v1/records/{r}", headers=headers).json() for r in created]
                files = [a["extraction"]["status"] for record in records for a in record["attachments"]]
                analysed = all(record["ai"]["status"] == "done" for record in records)
                return analysed and files == ["done"] and queues_drained(jilu.redis_url)

            assert wait_until(caught_up, CATCH_UP_WITHIN), f"the analyses and reading owed were not done:\n{llm.output}"
            versions = {
                r: http.get(f"{ports['mobile']}/api/v1/records/{r}", headers=headers).json()["version"] for r in created
            }
            assert_each_job_done_once(
                llm.service_lines("llm"), jilu.redis_url, fake, {r: (words[r], versions[r]) for r in created}
            )
            assert len(read_lines(llm, attachment_id)) == 1

            for port, url in ports.items():  # and chat works again, with nothing restarted
                assert http.get(f"{url}/health/ready").status_code == 200, port
                conversation = http.post(f"{url}/api/v1/chat/conversations", headers=headers, json={})
                assert conversation.status_code == 201, (port, conversation.text)
                answer = http.post(
                    f"{url}/api/v1/chat/conversations/{conversation.json()['id']}/messages",
                    headers=headers,
                    json={"content": "budget?"},
                )
                assert answer.status_code == 201, (port, answer.text)
