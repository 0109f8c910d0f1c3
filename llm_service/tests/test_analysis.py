"""The analysis pipeline: record events → the queue → a worker → title, summary and tags.

user_service and mobile_service run in-process; llm_service is served over real HTTP (its
workers run on that server's event loop) so mobile's forwarding reaches it; the remote
provider is the fake one, a real HTTP server speaking the OpenAI wire format.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from llm_service.app.config import LlmSettings
from llm_service.app.main import create_app as create_llm_app
from llm_service.tests.fake_provider import FakeProvider, Reply
from mobile_service.app.config import MobileSettings
from mobile_service.app.main import create_app as create_mobile_app
from tests.support import app_client, serve_app
from user_service.app.config import UserSettings
from user_service.app.main import create_app as create_user_app

PASSWORD = "plum-Lantern-42"
MEETING = "今天下午开会讨论了下季度的市场预算。财务部建议削减广告费用，市场部希望增加线上投放。"
ANALYSIS = json.dumps({"title": "Budget meeting", "summary": "The team discussed the budget.", "tags": ["budget"]})


@dataclass
class Stack:
    mobile: httpx.AsyncClient
    llm_url: str
    headers: dict[str, str]
    stranger: dict[str, str]

    async def create(self, **fields: Any) -> dict[str, Any]:
        response = await self.mobile.post("/api/v1/records", headers=self.headers, json=fields)
        assert response.status_code == 201, response.text
        return response.json()

    async def read(self, record_id: str) -> dict[str, Any]:
        response = await self.mobile.get(f"/api/v1/records/{record_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()

    async def wait_for_ai(self, record_id: str, statuses: tuple[str, ...] = ("done", "failed")) -> dict[str, Any]:
        """Poll until the record's analysis reaches one of `statuses` (generous bound)."""
        for _ in range(240):
            record = await self.read(record_id)
            if record["ai"]["status"] in statuses:
                return record
            await asyncio.sleep(0.25)
        raise AssertionError(f"analysis of {record_id} stayed {record['ai']}")


StackFactory = Callable[..., Any]


@pytest.fixture
async def make_stack(
    make_settings: Callable[..., Any], migrated_database_url: str, redis: Any
) -> AsyncIterator[StackFactory]:
    """`await make_stack(**llm_settings)`: the three services on one database and Redis."""
    async with AsyncExitStack() as stack:

        async def build(**llm_overrides: Any) -> Stack:
            common = {"database_url": migrated_database_url, "secret_key": "s" * 40}
            llm_settings = make_settings(LlmSettings, **common, analysis_retry_seconds=0.2, **llm_overrides)
            llm_url = await stack.enter_async_context(serve_app(create_llm_app(llm_settings)))
            users = await stack.enter_async_context(app_client(create_user_app(make_settings(UserSettings, **common))))
            mobile_app = create_mobile_app(make_settings(MobileSettings, **common, llm_url=llm_url))
            mobile = await stack.enter_async_context(app_client(mobile_app))
            headers = {}
            for name in ("alice", "mallory"):
                await users.post("/api/v1/auth/register", json={"username": name, "password": PASSWORD})
                token = await users.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
                headers[name] = {"Authorization": f"Bearer {token.json()['access_token']}"}
            return Stack(mobile, llm_url, headers["alice"], headers["mallory"])

        yield build


def analysis_calls(fake: FakeProvider) -> list[Any]:
    """The provider calls that asked for a title, summary and tags (not memory extraction)."""
    return [r for r in fake.chat_requests if "write a short title" in json.dumps(r.json["messages"][0])]


def remote(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    return {
        "llm_provider": "custom",
        "llm_base_url": fake.base_url,
        "llm_model": "fake-model",
        "llm_api_key": "sk-test-key-for-the-fake",
        "llm_allowed_hosts": [fake.host_port],
        **extra,
    }


async def test_offline_provider_titles_summarises_and_tags_a_new_record(make_stack) -> None:
    stack = await make_stack()
    record = await stack.create(content=MEETING)

    analysed = await stack.wait_for_ai(record["id"])

    assert analysed["ai"]["status"] == "done"
    assert analysed["ai"]["title"] and analysed["ai"]["title"] in MEETING
    assert analysed["ai"]["summary"]
    assert "预算" in "".join(analysed["ai"]["tags"]) or "开会讨论" in analysed["ai"]["tags"]
    assert analysed["version"] == record["version"], "analysis must not bump the version"


async def test_remote_provider_fills_the_fields_and_opted_out_records_never_reach_it(make_stack, fake) -> None:
    fake.default_reply = Reply(text=ANALYSIS)
    stack = await make_stack(**remote(fake))
    private = await stack.create(content="my secret diary entry about zebras", ai_opt_out=True)
    public = await stack.create(content="Notes from the budget meeting with finance.")

    analysed = await stack.wait_for_ai(public["id"])

    assert analysed["ai"] == {
        "status": "done",
        "title": "Budget meeting",
        "summary": "The team discussed the budget.",
        "tags": ["budget"],
        "error": None,
    }
    assert "budget meeting with finance" in fake.received_text()
    assert (await stack.read(private["id"]))["ai"]["status"] == "skipped"
    assert "zebras" not in fake.received_text()


async def test_a_failing_provider_is_retried_and_then_the_record_shows_the_error_class(make_stack, fake) -> None:
    fake.default_reply = Reply.html()  # never a usable answer
    stack = await make_stack(**remote(fake), analysis_max_attempts=2)
    record = await stack.create(content="Notes from the budget meeting.")

    failed = await stack.wait_for_ai(record["id"])

    assert failed["ai"]["status"] == "failed"
    assert failed["ai"]["error"] == "bad_response"
    assert len(analysis_calls(fake)) == 2  # one call per attempt (an HTML page is not retried inside a call)


async def test_a_job_that_fails_once_succeeds_on_its_retry(make_stack, fake) -> None:
    fake.script(Reply.html())
    fake.default_reply = Reply(text=ANALYSIS)
    stack = await make_stack(**remote(fake))
    record = await stack.create(content="Notes from the budget meeting.")

    analysed = await stack.wait_for_ai(record["id"])

    assert analysed["ai"]["status"] == "done"
    assert len(analysis_calls(fake)) == 2


async def test_several_workers_do_each_job_exactly_once(make_stack, fake) -> None:
    fake.default_reply = Reply(text=ANALYSIS, delay=0.2)
    stack = await make_stack(**remote(fake), analysis_workers=4)
    records = [await stack.create(content=f"meeting number {i} about the budget") for i in range(12)]

    for record in records:
        assert (await stack.wait_for_ai(record["id"]))["ai"]["status"] == "done"

    seen = [r.json for r in analysis_calls(fake)]
    assert len(seen) == 12, f"{len(seen)} provider calls for 12 jobs"
    for i in range(12):
        assert sum(f"meeting number {i} about" in json.dumps(body, ensure_ascii=False) for body in seen) == 1


async def test_analyze_requeues_through_the_mobile_port_and_refuses_opted_out_records(make_stack, fake) -> None:
    fake.default_reply = Reply(text=ANALYSIS)
    stack = await make_stack(**remote(fake))
    record = await stack.create(content="Notes from the budget meeting.")
    await stack.wait_for_ai(record["id"])
    private = await stack.create(content="private", ai_opt_out=True)

    again = await stack.mobile.post(f"/api/v1/records/{record['id']}/analyze", headers=stack.headers)
    refused = await stack.mobile.post(f"/api/v1/records/{private['id']}/analyze", headers=stack.headers)
    unknown = await stack.mobile.post(
        "/api/v1/records/01a2001e-0000-7000-8000-000000000000/analyze", headers=stack.headers
    )
    anonymous = await stack.mobile.post(f"/api/v1/records/{record['id']}/analyze")
    other_users = await stack.mobile.post(f"/api/v1/records/{record['id']}/analyze", headers=stack.stranger)

    assert again.status_code == 202 and again.json() == {"id": record["id"], "status": "pending"}
    assert refused.status_code == 409
    assert unknown.status_code == 404
    assert anonymous.status_code == 401
    assert other_users.status_code == 404
    assert (await stack.wait_for_ai(record["id"]))["ai"]["status"] == "done"
    assert len(analysis_calls(fake)) == 2


async def test_an_edit_during_analysis_is_not_overwritten_by_the_older_result(make_stack, fake) -> None:
    fake.script(Reply(text=ANALYSIS, delay=1.5))  # the first analysis is slow
    fake.default_reply = Reply(text=json.dumps({"title": "Second", "summary": "After the edit.", "tags": ["edit"]}))
    stack = await make_stack(**remote(fake))
    record = await stack.create(content="first text")
    for _ in range(40):
        if fake.chat_requests:
            break
        await asyncio.sleep(0.1)
    edited = await stack.mobile.patch(
        f"/api/v1/records/{record['id']}", headers={**stack.headers, "If-Match": '"1"'}, json={"content": "second text"}
    )
    assert edited.status_code == 200

    final = await stack.wait_for_ai(record["id"])
    for _ in range(20):  # the slow, older result arrives after the newer one: it must lose
        await asyncio.sleep(0.1)
    final = await stack.read(record["id"])

    assert final["version"] == 2
    assert final["ai"]["title"] == "Second"
