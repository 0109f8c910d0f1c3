"""The extraction workers' guarantees on the real Redis queue and database: a job whose
worker dies mid-reading is reclaimed and finished once by another; a job for a target that
is gone or read already does nothing; a pending reading whose job Redis lost is queued again
by the sweeper; a failure is retried, then shown as `failed`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import select, update

from common.deps import service_state
from common.records.extraction import EXTRACTION_STREAM, extraction_queue
from common.records.models import Attachment, Record
from llm_service.app.extraction import store
from llm_service.app.extraction.results import Extracted, ExtractionFailed
from llm_service.app.extraction.store import Claimed
from llm_service.app.extraction.worker import ExtractionWorkers
from tests.records.attachment_support import Account, Stack, open_stack
from tests.records.attachment_support import image_bytes as plain_image

ORPHANED_MS = 300


class ScriptedEngines:
    """Engines that answer what the test says: block until released, fail, or read `text`."""

    def __init__(self, text: str = "周五 Friday") -> None:
        self.text = text
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.block = False
        self.fail_with: str | None = None
        self.reads: list[str] = []

    async def read(self, claimed: Claimed) -> Extracted:
        self.reads.append(claimed.id)
        self.started.set()
        if self.block:
            await self.release.wait()
        if self.fail_with:
            raise ExtractionFailed(self.fail_with)
        return Extracted("done", "scripted", self.text)


@pytest.fixture
async def stack(make_settings: Callable[..., Any], migrated_database_url: str, redis: Redis) -> AsyncIterator[Stack]:
    async with open_stack(make_settings, migrated_database_url, redis) as opened:
        yield opened


@pytest.fixture
async def owner(stack: Stack) -> Account:
    return await stack.account("alice")


def workers(stack: Stack, engines: ScriptedEngines, **options: Any) -> ExtractionWorkers:
    options = {"workers": 1, "max_attempts": 2, "retry_seconds": 0.1, "orphaned_after_ms": ORPHANED_MS, **options}
    return ExtractionWorkers(stack.redis, service_state(stack.app).sessions, engines, **options)  # type: ignore[arg-type]


async def uploaded(stack: Stack, owner: Account) -> tuple[dict[str, Any], dict[str, Any]]:
    record = await stack.record(owner, content="a screenshot")
    attachment = await stack.uploaded(owner, record["id"], plain_image("PNG"), "shot.png")
    return record, attachment


async def status_of(stack: Stack, attachment_id: str) -> str | None:
    return await stack.scalar(select(Attachment.extraction_status).where(Attachment.id == attachment_id))


async def until(condition: Callable[[], Any], seconds: float = 20) -> None:
    for _ in range(int(seconds / 0.05)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never held")


async def test_a_job_whose_worker_dies_is_finished_once_by_another(stack: Stack, owner: Account) -> None:
    """A worker took the job and claimed the file, then died (no acknowledgement, no
    heartbeat, the file left `running`); another reclaims the job after the orphan window."""
    record, attachment = await uploaded(stack, owner)
    queue = extraction_queue(stack.redis)
    await queue.ensure_group()
    job = await queue.read("dead-worker", 1000)
    assert job is not None and job.fields["id"] == attachment["id"]
    sessions = service_state(stack.app).sessions
    claimed = await store.claim(sessions, stack.redis, "attachment", attachment["id"], reclaimed=False)
    assert isinstance(claimed, store.Claimed)
    assert await status_of(stack, attachment["id"]) == "running"
    # Another worker's fresh delivery of the same target (a duplicate job) leaves it alone.
    assert (
        await store.claim(sessions, stack.redis, "attachment", attachment["id"], reclaimed=False) is store.Claim.NOTHING
    )
    seq_before = await stack.scalar(select(Record.change_seq).where(Record.id == record["id"]))

    survivor = ScriptedEngines()
    async with AsyncExitStack() as running:
        await workers(stack, survivor).start(running)
        await until(lambda: _done(stack, attachment["id"]))
        await until(lambda: _drained(stack.redis))
    assert survivor.reads == [attachment["id"]]  # once
    seq_after = await stack.scalar(select(Record.change_seq).where(Record.id == record["id"]))
    assert seq_after == seq_before + 1  # one stored result: one change
    found = await stack.api.get("/api/v1/search", params={"q": "周五"}, headers=owner.headers)
    assert [hit["record"]["id"] for hit in found.json()["items"]] == [record["id"]]


async def test_a_repeated_or_stale_job_reads_nothing_twice(stack: Stack, owner: Account) -> None:
    _, attachment = await uploaded(stack, owner)
    queue = extraction_queue(stack.redis)
    await queue.enqueue({"target": "attachment", "id": attachment["id"], "owner_id": owner.id})  # a duplicate
    await queue.enqueue({"target": "attachment", "id": "01000000-0000-7000-8000-000000000000", "owner_id": owner.id})
    await queue.enqueue({"target": "nonsense", "id": "x", "owner_id": owner.id})
    engines = ScriptedEngines()
    async with AsyncExitStack() as running:
        await workers(stack, engines).start(running)
        await until(lambda: _done(stack, attachment["id"]))
        await until(lambda: _drained(stack.redis), seconds=60)  # the unknown id waits out its deliveries
    assert engines.reads == [attachment["id"]]


async def test_a_failure_is_retried_then_shown_as_failed(stack: Stack, owner: Account) -> None:
    record, attachment = await uploaded(stack, owner)
    engines = ScriptedEngines()
    engines.fail_with = "the page took too long"
    async with AsyncExitStack() as running:
        await workers(stack, engines, max_attempts=2).start(running)
        await until(lambda: _status_is(stack, attachment["id"], "failed"), seconds=30)
    assert len(engines.reads) == 2
    shown = (await stack.api.get(f"/api/v1/records/{record['id']}", headers=owner.headers)).json()
    assert shown["attachments"][0]["extraction"]["status"] == "failed"
    assert shown["attachments"][0]["extraction"]["error"] == "the page took too long"


async def test_the_sweeper_queues_again_what_redis_lost(stack: Stack, owner: Account) -> None:
    _, attachment = await uploaded(stack, owner)
    await stack.redis.delete(EXTRACTION_STREAM)  # Redis restarted empty
    # Asked for long ago: overdue.
    await stack.execute(
        update(Attachment)
        .where(Attachment.id == attachment["id"])
        .values(extraction_requested_at=datetime.now(UTC) - timedelta(hours=1))
    )
    engines = ScriptedEngines()
    extraction = workers(stack, engines)
    assert await extraction.sweep() == 1
    async with AsyncExitStack() as running:
        await extraction.start(running)
        await until(lambda: _done(stack, attachment["id"]))
    assert engines.reads == [attachment["id"]]


async def _done(stack: Stack, attachment_id: str) -> bool:
    return await _status_is(stack, attachment_id, "done")


async def _status_is(stack: Stack, attachment_id: str, status: str) -> bool:
    return await status_of(stack, attachment_id) == status


async def _drained(redis: Redis) -> bool:
    return (await extraction_queue(redis).status()).drained
