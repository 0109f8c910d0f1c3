"""llm_service's metrics (common/metrics.py): remote provider calls (latency, outcome,
tokens), budget refusals, queued jobs' outcomes and the queues' depths, and all of it on
`GET /metrics` after real analysis jobs. Real Redis and database; the fake provider."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from common.api_clients.llm import CircuitBreaker, OpenAICompatibleClient, ProviderBadRequest, ProviderUnauthorized
from common.metrics import record_queue
from common.queue import DurableQueue, Failed, Job, Workers
from common.queue import Outcome as JobOutcome
from llm_service.app.budgets import BudgetExceeded, BudgetGuard
from llm_service.app.config import LlmSettings
from llm_service.tests.fake_provider import FAKE_API_KEY, FakeProvider, Reply
from llm_service.tests.llm_stack import llm_stack, queue_drained, remote_settings
from tests.support import sample, scrape_metrics

MESSAGES = [{"role": "user", "content": "你好"}]
ANALYSIS = json.dumps({"title": "Metrics", "summary": "A note about metrics.", "tags": ["metrics"]})


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Counted:
    """The change of some samples between `__init__` and `delta`."""

    def __init__(self, *samples: tuple[str, dict[str, str]]) -> None:
        self.before = {(name, tuple(sorted(labels.items()))): value(name, **labels) for name, labels in samples}

    def delta(self, name: str, **labels: str) -> float:
        return value(name, **labels) - self.before[(name, tuple(sorted(labels.items())))]


def provider_samples(operation: str, *outcomes: str) -> list[tuple[str, dict[str, str]]]:
    samples = [("jilu_llm_provider_requests_total", {"operation": operation, "outcome": o}) for o in outcomes]
    samples += [
        ("jilu_llm_provider_tokens_total", {"operation": operation, "kind": k}) for k in ("prompt", "completion")
    ]
    samples.append(("jilu_llm_provider_request_duration_seconds_count", {"operation": operation}))
    return samples


def client(http: httpx.AsyncClient, fake: FakeProvider, **options: Any) -> OpenAICompatibleClient:
    return OpenAICompatibleClient(
        http,
        fake.base_url,
        options.pop("api_key", FAKE_API_KEY),
        "fake-model",
        breaker=CircuitBreaker(failure_threshold=50),
        backoff_base=0.01,
        backoff_max=0.05,
        **options,
    )


async def test_provider_calls_are_timed_and_counted_with_their_tokens_and_errors(http, shared_fake) -> None:
    counted = Counted(*provider_samples("chat", "ok", "bad_request", "unauthorized"))
    shared_fake.script(Reply(text="好", usage=(11, 7)), Reply.error(400))
    await client(http, shared_fake).chat(MESSAGES)
    with pytest.raises(ProviderBadRequest):
        await client(http, shared_fake).chat(MESSAGES)
    with pytest.raises(ProviderUnauthorized):
        await client(http, shared_fake, api_key="sk-wrong-key").chat(MESSAGES)

    assert counted.delta("jilu_llm_provider_requests_total", operation="chat", outcome="ok") == 1
    assert counted.delta("jilu_llm_provider_requests_total", operation="chat", outcome="bad_request") == 1
    assert counted.delta("jilu_llm_provider_requests_total", operation="chat", outcome="unauthorized") == 1
    assert counted.delta("jilu_llm_provider_request_duration_seconds_count", operation="chat") == 3
    assert counted.delta("jilu_llm_provider_tokens_total", operation="chat", kind="prompt") == 11
    assert counted.delta("jilu_llm_provider_tokens_total", operation="chat", kind="completion") == 7


async def test_a_stream_is_counted_when_it_ends_and_when_its_reader_leaves(http, shared_fake) -> None:
    counted = Counted(*provider_samples("chat_stream", "ok", "cancelled"))
    shared_fake.script(Reply(chunks=["今天", "很好"], usage=(30, 4)), Reply(chunks=["一", "二", "三"]))
    assert [d.text async for d in client(http, shared_fake).stream_chat(MESSAGES)][:2] == ["今天", "很好"]
    async with aclosing(client(http, shared_fake).stream_chat(MESSAGES)) as stream:
        async for _ in stream:
            break  # the reader leaves after the first piece

    assert counted.delta("jilu_llm_provider_requests_total", operation="chat_stream", outcome="ok") == 1
    assert counted.delta("jilu_llm_provider_requests_total", operation="chat_stream", outcome="cancelled") == 1
    assert counted.delta("jilu_llm_provider_request_duration_seconds_count", operation="chat_stream") == 2
    assert counted.delta("jilu_llm_provider_tokens_total", operation="chat_stream", kind="prompt") == 30
    assert counted.delta("jilu_llm_provider_tokens_total", operation="chat_stream", kind="completion") == 4


async def test_budget_refusals_are_counted_by_budget(make_settings: Callable[..., Any], redis: Redis) -> None:
    counted = Counted(*[("jilu_llm_budget_refusals_total", {"budget": b}) for b in ("requests", "tokens")])
    budgets = BudgetGuard(redis, make_settings(LlmSettings, llm_daily_requests=2, llm_daily_tokens=100))
    await budgets.ensure_allowed("u1")
    await budgets.record("u1", 150)  # over the tokens, not yet the requests
    for _ in range(2):
        with pytest.raises(BudgetExceeded):
            await budgets.ensure_allowed("u1")
    await budgets.record("u2", 1)
    await budgets.record("u2", 1)
    with pytest.raises(BudgetExceeded):
        await budgets.ensure_allowed("u2")

    assert counted.delta("jilu_llm_budget_refusals_total", budget="tokens") == 2
    assert counted.delta("jilu_llm_budget_refusals_total", budget="requests") == 1


async def test_job_outcomes_and_queue_depths(redis: Redis) -> None:
    queue = DurableQueue(redis, "jilu:test:metrics-jobs", "metrics-test")
    await queue.ensure_group()
    outcomes = ("done", "later", "failed", "given_up")
    counted = Counted(
        *[("jilu_queue_jobs_processed_total", {"queue": "metrics-test", "outcome": o}) for o in outcomes],
        ("jilu_queue_job_duration_seconds_count", {"queue": "metrics-test"}),
    )

    async def handle(job: Job) -> JobOutcome:
        kind = job.fields["kind"]
        if kind == "fail":
            raise Failed("provider_down")
        if kind == "crash":
            raise RuntimeError("a bug")
        return JobOutcome.LATER if kind == "later" else JobOutcome.DONE

    workers = Workers(queue, handle, workers=1, max_attempts=2, retry_seconds=60)
    for kind in ("done", "later", "fail", "crash", "waits", "waits"):
        await queue.enqueue({"kind": kind})
    jobs = [await queue.read("c1", 100) for _ in range(4)]
    for job in jobs:
        assert job is not None
        await workers.run("c1", job)
    assert jobs[3] is not None
    await workers.run("c1", jobs[3])  # the crash's second and last attempt: given up
    await record_queue(queue)

    assert counted.delta("jilu_queue_jobs_processed_total", queue="metrics-test", outcome="done") == 1
    assert counted.delta("jilu_queue_jobs_processed_total", queue="metrics-test", outcome="later") == 1
    assert counted.delta("jilu_queue_jobs_processed_total", queue="metrics-test", outcome="failed") == 2
    assert counted.delta("jilu_queue_jobs_processed_total", queue="metrics-test", outcome="given_up") == 1
    assert counted.delta("jilu_queue_job_duration_seconds_count", queue="metrics-test") == 5
    # Two never read; the `later` and the failed one pending (the failed one retrying).
    assert value("jilu_queue_jobs", queue="metrics-test", state="waiting") == 2
    assert value("jilu_queue_jobs", queue="metrics-test", state="pending") == 2
    assert value("jilu_queue_jobs", queue="metrics-test", state="retrying") == 1


async def test_llm_service_reports_its_queues_providers_and_budgets_on_metrics(
    make_settings: Callable[..., Any], migrated_database_url: str, redis: Redis, fake: FakeProvider
) -> None:
    fake.default_reply = Reply(text=ANALYSIS, usage=(11, 7))
    settings = remote_settings(
        fake, llm_allowed_hosts=[fake.host_port], llm_daily_requests=1, llm_daily_tokens=0, analysis_workers=1
    )
    async with llm_stack(make_settings, migrated_database_url, **settings) as stack:
        before = await scrape_metrics(stack.llm)
        first = await stack.create_record("bob", content="The first note about metrics.")
        assert (await stack.wait_for_ai("bob", first["id"]))["ai"]["status"] == "done"
        second = await stack.create_record("bob", content="The second note, over the budget.")
        refused = await stack.wait_for_ai("bob", second["id"])
        await queue_drained(redis)
        after = await scrape_metrics(stack.llm)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert refused["ai"] == {**refused["ai"], "status": "failed", "error": "budget_exceeded"}
    calls = delta("jilu_llm_provider_requests_total", operation="chat", outcome="ok")
    assert calls == len(fake.chat_requests) >= 1  # the analysis (and what follows it) answered
    assert delta("jilu_llm_provider_tokens_total", operation="chat", kind="prompt") == 11 * calls
    assert delta("jilu_llm_provider_request_duration_seconds_count", operation="chat") == calls
    assert delta("jilu_llm_budget_refusals_total", budget="requests") >= 1
    assert delta("jilu_queue_jobs_processed_total", queue="analysis", outcome="done") >= 2
    for queue in ("analysis", "extraction"):  # read from Redis at the scrape: drained now
        for state in ("waiting", "pending", "retrying"):
            assert (("jilu_queue_jobs", frozenset({"queue": queue, "state": state}.items()))) in after
    assert sample(after, "jilu_queue_jobs", queue="analysis", state="waiting") == 0
    assert sample(after, "jilu_queue_jobs", queue="analysis", state="pending") == 0
    assert sample(
        after, "jilu_http_requests_total", service="llm_service", method="GET", route="/metrics", status="200"
    )
