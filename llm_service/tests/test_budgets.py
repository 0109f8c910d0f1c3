"""Per-user daily budgets for remote providers: requests and tokens per UTC day, a 429 with
the time until the reset, analysis failing at once with `budget_exceeded`, and the offline
provider never limited. Real Redis; the remote provider is the fake one."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from common.errors import RateLimited, install_error_handlers
from llm_service.app.budgets import KEY_TTL_SECONDS, BudgetExceeded, BudgetGuard, budget_key
from llm_service.app.config import LlmSettings
from llm_service.tests.fake_provider import Reply
from llm_service.tests.llm_stack import llm_stack, remote_settings

ANALYSIS = json.dumps({"title": "Budget meeting", "summary": "The team discussed the budget.", "tags": ["budget"]})
LATE = datetime(2026, 3, 1, 23, 59, 30, tzinfo=UTC)  # 30 s before the day resets


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def guard(make_settings: Callable[..., Any], redis: Any, clock: Clock, **limits: Any) -> BudgetGuard:
    return BudgetGuard(redis, make_settings(LlmSettings, **limits), now=clock)


async def test_the_request_budget_refuses_until_the_next_utc_midnight(make_settings, redis) -> None:
    clock = Clock(LATE)
    budgets = guard(make_settings, redis, clock, llm_daily_requests=2, llm_daily_tokens=0)

    await budgets.ensure_allowed("u1")
    await budgets.record("u1", 10)
    await budgets.ensure_allowed("u1")
    await budgets.record("u1", 10)
    with pytest.raises(RateLimited) as refused:
        await budgets.ensure_allowed("u1")
    await budgets.ensure_allowed("u2")  # another user's budget is their own

    assert refused.value.retry_after == 30
    assert refused.value.headers["Retry-After"] == "30"
    assert refused.value.status_code == 429
    assert "request" in str(refused.value.detail)
    assert refused.value.extra["reset_at"] == datetime(2026, 3, 2, tzinfo=UTC)
    assert await budgets.used("u1") == (2, 20)
    ttl = await redis.ttl(budget_key("u1", LATE, "requests"))
    assert 0 < ttl <= KEY_TTL_SECONDS

    clock.now = LATE + timedelta(seconds=31)  # a new UTC day
    await budgets.ensure_allowed("u1")
    assert await budgets.used("u1") == (0, 0)


async def test_the_token_budget_refuses_once_it_is_used_up(make_settings, redis) -> None:
    clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    budgets = guard(make_settings, redis, clock, llm_daily_requests=0, llm_daily_tokens=100)

    await budgets.record("u1", 99)
    await budgets.ensure_allowed("u1")  # under the budget: the next call may go
    await budgets.record("u1", 5)
    with pytest.raises(BudgetExceeded) as refused:
        await budgets.ensure_allowed("u1")

    assert refused.value.budget == "tokens"
    assert "token" in str(refused.value.detail)
    assert refused.value.retry_after == 12 * 3600


async def test_zero_means_unlimited(make_settings, redis) -> None:
    budgets = guard(make_settings, redis, Clock(LATE), llm_daily_requests=0, llm_daily_tokens=0)
    for _ in range(5):
        await budgets.record("u1", 1_000_000)
    await budgets.ensure_allowed("u1")
    assert await budgets.used("u1") == (5, 5_000_000)


def test_budgets_default_to_500_requests_and_200000_tokens_and_refuse_negatives(make_settings) -> None:
    settings = make_settings(LlmSettings)
    assert (settings.llm_daily_requests, settings.llm_daily_tokens) == (500, 200_000)
    with pytest.raises(ValueError, match="llm_daily_requests"):
        make_settings(LlmSettings, llm_daily_requests=-1)


async def test_an_exhausted_budget_answers_429_with_retry_after_and_the_reset_time(make_settings, redis) -> None:
    budgets = guard(make_settings, redis, Clock(LATE), llm_daily_requests=1)
    await budgets.record("u1", 3)
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/ask")
    async def ask() -> dict[str, str]:
        await budgets.ensure_allowed("u1")
        return {"answer": "never"}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.post("/ask")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"
    body = response.json()
    assert body["error"] == "budget_exceeded"
    assert body["budget"] == "requests"
    assert body["reset_at"].startswith("2026-03-02T00:00:00")
    assert "2026-03-02T00:00:00Z" in body["detail"]


async def test_the_third_remote_analysis_over_budget_fails_and_never_reaches_the_provider(
    make_settings, migrated_database_url, redis, fake
) -> None:
    fake.default_reply = Reply(text=ANALYSIS)
    settings = remote_settings(
        fake, llm_allowed_hosts=[fake.host_port], llm_daily_requests=2, analysis_workers=1, llm_daily_tokens=0
    )
    async with llm_stack(make_settings, migrated_database_url, **settings) as stack:
        results = []
        for number in range(3):
            record = await stack.create_record("bob", content=f"Budget meeting number {number} with finance.")
            results.append(await stack.wait_for_ai("bob", record["id"]))
        # Someone else's budget is untouched by Bob's.
        alices = await stack.create_record("alice", content="Alice's budget meeting with finance.")
        alice = await stack.wait_for_ai("alice", alices["id"])

    statuses = [(r["ai"]["status"], r["ai"]["error"]) for r in results]
    assert statuses[0] == ("done", None)
    assert statuses[2] == ("failed", "budget_exceeded")
    assert all(s in (("done", None), ("failed", "budget_exceeded")) for s in statuses)
    assert alice["ai"]["status"] == "done"
    bobs_calls = [r for r in fake.chat_requests if "Budget meeting number" in json.dumps(r.json)]
    assert len(bobs_calls) == 2  # one worker: the budget holds exactly
    assert "Budget meeting number 2" not in fake.received_text()
    assert results[2]["ai"]["title"] is None


async def test_the_offline_provider_is_never_limited(make_settings, migrated_database_url, redis) -> None:
    async with llm_stack(make_settings, migrated_database_url, llm_daily_requests=1, llm_daily_tokens=1) as stack:
        results = []
        for number in range(3):
            record = await stack.create_record("bob", content=f"今天第{number}次开会讨论了下季度的市场预算。")
            results.append(await stack.wait_for_ai("bob", record["id"]))

    assert [r["ai"]["status"] for r in results] == ["done", "done", "done"]
    assert await redis.keys("jilu:budget:*") == []
