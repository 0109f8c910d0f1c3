"""`GET /api/v1/llm/usage`: what the caller has spent today of the daily budgets for remote
providers, read from the same Redis counters the budgets count into; another user's spending
is their own; a budget that is off has no limit; a login is needed. Real Redis, real
databases; the remote provider is the fake one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from llm_service.app.budgets import BudgetGuard, next_reset
from llm_service.app.config import LlmSettings
from llm_service.app.deps import llm_state
from llm_service.tests.fake_provider import FakeProvider, Reply
from llm_service.tests.llm_stack import LlmStack, remote_settings
from llm_service.tests.test_budgets import LATE, Clock
from tests.support import assert_error

USAGE = "/api/v1/llm/usage"
DIGESTS = "/api/v1/digests/generate"
FAKE_TOKENS = sum(Reply().usage)  # what the fake reports per call


async def usage_of(stack: LlmStack, username: str) -> dict[str, Any]:
    before = datetime.now(UTC)
    response = await stack.llm.get(USAGE, headers=stack.auth(username))
    after = datetime.now(UTC)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"requests", "tokens", "resets_at"}
    resets_at = datetime.fromisoformat(body.pop("resets_at"))
    assert resets_at in (next_reset(before), next_reset(after))  # the next UTC midnight
    return body


async def test_usage_counts_the_callers_remote_calls_and_no_one_elses(make_stack, fake: FakeProvider) -> None:
    fake.default_reply = Reply(text="## 今天\n\n平静的一天。")
    settings = remote_settings(fake, llm_allowed_hosts=[fake.host_port], llm_daily_requests=5, llm_daily_tokens=1000)
    async with make_stack(**settings) as stack:
        fresh = await usage_of(stack, "bob")
        for _ in range(2):  # one remote call each, counted before the answer
            response = await stack.llm.post(DIGESTS, json={"period": "day"}, headers=stack.auth("bob"))
            assert response.status_code == 201, response.text
        bobs = await usage_of(stack, "bob")
        alices = await usage_of(stack, "alice")
        counters = await llm_state(stack.llm_app).budgets.used(await stack.user_id("bob"))

    assert fresh == {"requests": {"used": 0, "limit": 5}, "tokens": {"used": 0, "limit": 1000}}
    assert len(fake.chat_requests) == 2
    assert bobs == {"requests": {"used": 2, "limit": 5}, "tokens": {"used": 2 * FAKE_TOKENS, "limit": 1000}}
    assert counters == (2, 2 * FAKE_TOKENS)  # the very counters the budget checks
    assert alices == {"requests": {"used": 0, "limit": 5}, "tokens": {"used": 0, "limit": 1000}}


async def test_a_budget_that_is_off_has_no_limit_but_is_still_counted(make_stack) -> None:
    async with make_stack(llm_daily_requests=0, llm_daily_tokens=300) as stack:
        budgets: BudgetGuard = llm_state(stack.llm_app).budgets
        bob = await stack.user_id("bob")
        for tokens in (40, 60, 0):
            await budgets.record(bob, tokens)
        usage = await usage_of(stack, "bob")

    assert usage == {"requests": {"used": 3, "limit": None}, "tokens": {"used": 100, "limit": 300}}


async def test_the_offline_provider_is_never_counted(make_stack) -> None:
    async with make_stack(llm_daily_requests=5) as stack:
        response = await stack.llm.post(DIGESTS, json={"period": "day"}, headers=stack.auth("bob"))
        assert response.status_code == 201, response.text
        usage = await usage_of(stack, "bob")

    assert usage["requests"] == {"used": 0, "limit": 5}


async def test_usage_wants_a_login(make_stack) -> None:
    async with make_stack() as stack:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            code = "invalid_token" if headers else "unauthorized"
            assert_error(await stack.llm.get(USAGE, headers=headers), 401, code)


async def test_the_day_and_its_reset_come_from_one_moment(make_settings: Callable[..., Any], redis: Any) -> None:
    clock = Clock(LATE)  # 30 s before midnight UTC
    budgets = BudgetGuard(redis, make_settings(LlmSettings, llm_daily_requests=7, llm_daily_tokens=0), now=clock)
    await budgets.record("u1", 25)

    late = await budgets.usage("u1")
    clock.now = LATE + timedelta(seconds=31)
    next_day = await budgets.usage("u1")

    assert (late.requests, late.request_limit, late.tokens, late.token_limit) == (1, 7, 25, None)
    assert late.resets_at == datetime(2026, 3, 2, tzinfo=UTC)
    assert (next_day.requests, next_day.tokens) == (0, 0)
    assert next_day.resets_at == datetime(2026, 3, 3, tzinfo=UTC)


async def test_with_both_budgets_off_neither_has_a_limit(make_settings: Callable[..., Any], redis: Any) -> None:
    budgets = BudgetGuard(redis, make_settings(LlmSettings, llm_daily_requests=0, llm_daily_tokens=0))
    await budgets.record("u1", 1_000_000)

    usage = await budgets.usage("u1")

    assert (usage.requests, usage.request_limit, usage.tokens, usage.token_limit) == (1, None, 1_000_000, None)
