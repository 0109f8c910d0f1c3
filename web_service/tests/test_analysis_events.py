"""AI results reach the browser: llm_service announces each stored analysis (done or failed)
as one `analyzed` event, which `GET /api/v1/events` carries and the analysis queue skips.

llm_service, user_service and web_service are served over real HTTP on one database and
Redis; the provider is the fake one (a real HTTP server speaking the OpenAI wire format).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from redis.asyncio import Redis

from common.records.events import RECORD_EVENTS_STREAM
from llm_service.app.config import LlmSettings
from llm_service.app.main import create_app as create_llm_app
from llm_service.tests.fake_provider import FakeProvider, Reply, serve_fake_provider
from llm_service.tests.llm_stack import queue_drained
from tests.support import serve_app
from web_service.tests.conftest import MakeWebStack
from web_service.tests.support import WebStack, create, nothing_more, open_events, record_events

ANALYSIS = json.dumps({"title": "Budget meeting", "summary": "The team discussed the budget.", "tags": ["budget"]})


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with serve_fake_provider() as provider:
        yield provider


@pytest.fixture
async def analysing_stack(
    make_web_stack: MakeWebStack, make_settings: Callable[..., Any], migrated_database_url: str, fake: FakeProvider
) -> AsyncIterator[Callable[..., Any]]:
    """`await analysing_stack(**llm_settings)`: the web stack plus llm_service analysing with the fake."""
    async with AsyncExitStack() as exits:

        async def build(**llm: Any) -> WebStack:
            settings = make_settings(
                LlmSettings,
                database_url=migrated_database_url,
                secret_key="w" * 40,
                llm_provider="custom",
                llm_base_url=fake.base_url,
                llm_model="fake-model",
                llm_api_key="sk-test-key-for-the-fake",
                llm_allowed_hosts=[fake.host_port],
                analysis_retry_seconds=0.2,
                scheduler_interval_seconds=0,
                **llm,
            )
            await exits.enter_async_context(serve_app(create_llm_app(settings)))
            return await make_web_stack(web={"events_heartbeat_seconds": 0.3})

        yield build


def analysis_calls(fake: FakeProvider) -> int:
    """Provider calls that asked for a title, summary and tags (not memory extraction)."""
    return len([r for r in fake.chat_requests if "write a short title" in json.dumps(r.json["messages"][0])])


async def event_types_of(redis: Redis, record_id: str) -> list[str]:
    entries: list[tuple[str, dict[str, str]]] = await redis.xrange(RECORD_EVENTS_STREAM)  # type: ignore[assignment]
    return [fields["type"] for _, fields in entries if fields["record_id"] == record_id]


@pytest.mark.parametrize("outcome", ["done", "failed"])
async def test_an_analysis_is_announced_once_and_queues_no_second_one(
    analysing_stack: Callable[..., Any], fake: FakeProvider, outcome: str
) -> None:
    fake.default_reply = Reply(text=ANALYSIS) if outcome == "done" else Reply.html()
    stack: WebStack = await analysing_stack(analysis_max_attempts=1)
    web = await stack.served()
    await stack.register("alice")
    alice = await stack.token("alice")

    async with open_events(web, alice) as events:
        record = await create(web, alice, "Notes from the budget meeting.")
        created, analyzed = await record_events(events, 2)
        assert created.data == {"type": "created", "record_id": record["id"], "version": 1}
        assert analyzed.data == {"type": "analyzed", "record_id": record["id"], "version": 1}
        # The browser refetches on `analyzed`: the result is already there.
        refetched = await web.get(f"/api/v1/records/{record['id']}", headers={"Authorization": f"Bearer {alice}"})
        assert refetched.json()["ai"]["status"] == outcome
        await queue_drained(stack.redis)
        await nothing_more(events)

    assert await event_types_of(stack.redis, record["id"]) == ["created", "analyzed"]
    assert analysis_calls(fake) == 1
