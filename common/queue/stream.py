"""A durable job queue: a Redis stream read through a consumer group.

Durability comes from the stream itself. An entry stays in the group's pending list until a
worker acknowledges it, which it does only once the job is finished (or can never succeed).
A worker heartbeats the entry it is working on (XCLAIM to itself resets its idle time), so
entries that go idle belong to a worker that died or to a job waiting for its retry: a
reclaimer takes them over once their idle time passes the back-off for their delivery
count. XCLAIM with a minimum idle time is atomic, so each job is done by one worker.

The delivery count is not the attempt count: an entry is also delivered again when its
worker died, or when its handler asked to look again later. Failed attempts are counted in
a hash of their own, cleared when the entry is acknowledged.

The stream may be the queue's own (`enqueue` adds jobs; acknowledged entries are deleted,
so it holds only unfinished work) or a stream others write and read too (the record events:
`owns_stream=False`, entries are only acknowledged, the writer trims the stream).
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from common.cache import cache_key

# `status` counts at most this many unread entries on a Redis without XINFO's `lag` (< 7).
STATUS_SCAN_LIMIT = 10_000


@dataclass(frozen=True)
class Job:
    """One entry of the stream: its id, its fields, and how often it has been delivered."""

    entry_id: str
    fields: dict[str, str]
    deliveries: int = 1


@dataclass(frozen=True)
class QueueStatus:
    """How much work the queue holds: `waiting` (not yet read by any worker), `pending` (read
    and not acknowledged: being worked on, or waiting for a retry) and `retrying` (pending
    jobs with at least one failed attempt)."""

    waiting: int
    pending: int
    retrying: int

    @property
    def drained(self) -> bool:
        return self.waiting == 0 and self.pending == 0


class DurableQueue:
    """The stream `stream` as a job queue for the consumer group `group`."""

    def __init__(self, redis: Redis, stream: str, group: str, *, owns_stream: bool = True) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        self.owns_stream = owns_stream
        self.failures_key = cache_key(group, "failures")

    async def ensure_group(self) -> None:
        """Create the consumer group (from the start of the stream) unless it exists."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def enqueue(self, fields: dict[str, str]) -> str:
        """Add a job; its entry id. Durable once this returns (as durable as Redis is)."""
        return str(await self.redis.xadd(self.stream, fields))  # type: ignore[arg-type]

    async def read(self, consumer: str, block_ms: int) -> Job | None:
        """The next new entry for `consumer`, waiting up to `block_ms`."""
        # redis-py types stream replies as a union of every shape; a decoding client gives str.
        reply: Any = await self.redis.xreadgroup(self.group, consumer, {self.stream: ">"}, count=1, block=block_ms)
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                return Job(entry_id, fields)
        return None

    async def ack(self, job: Job) -> None:
        """The job is finished (or can never succeed): nobody works on it again."""
        await self._ack(job.entry_id)

    async def _ack(self, entry_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, entry_id)
            pipe.hdel(self.failures_key, entry_id)
            if self.owns_stream:
                pipe.xdel(self.stream, entry_id)
            await pipe.execute()

    async def count_failure(self, job: Job) -> int:
        """Count one failed attempt at `job`; the number of failed attempts so far."""
        return int(await self.redis.hincrby(self.failures_key, job.entry_id, 1))  # type: ignore[misc]

    async def heartbeat(self, consumer: str, job: Job) -> None:
        """Reset the entry's idle time: it is being worked on. JUSTID leaves its delivery
        count alone."""
        await self.redis.xclaim(self.stream, self.group, consumer, 0, [job.entry_id], justid=True)

    async def reclaim(
        self, consumer: str, backoff_ms: Callable[[int], int], limit: int = 20, skip: Container[str] = ()
    ) -> list[Job]:
        """Take over pending entries idle longer than the back-off for their delivery count,
        but those in `skip` (finished by this process, their acknowledgement on its way)."""
        pending = await self.redis.xpending_range(self.stream, self.group, min="-", max="+", count=limit)
        jobs = []
        for entry in pending:
            if entry["message_id"] in skip:
                continue
            min_idle = backoff_ms(int(entry["times_delivered"]))
            if int(entry["time_since_delivered"]) < min_idle:
                continue
            # Atomic: of several reclaimers only one gets an entry past its minimum idle time.
            claimed: Any = await self.redis.xclaim(self.stream, self.group, consumer, min_idle, [entry["message_id"]])
            for entry_id, fields in claimed:
                if fields:  # an entry trimmed from the stream comes back empty
                    jobs.append(Job(entry_id, fields, int(entry["times_delivered"]) + 1))
                else:
                    await self._ack(entry_id)
        return jobs

    async def status(self) -> QueueStatus:
        """The queue's numbers now (an empty status before the group exists)."""
        try:
            groups = await self.redis.xinfo_groups(self.stream)
        except ResponseError:  # no stream yet
            return QueueStatus(waiting=0, pending=0, retrying=0)
        group = next((g for g in groups if g["name"] == self.group), None)
        if group is None:
            return QueueStatus(waiting=await self.redis.xlen(self.stream), pending=0, retrying=0)
        waiting = group.get("lag")
        if waiting is None:  # Redis < 7, or it cannot tell: count what is past the group's position
            unread: Any = await self.redis.xrange(
                self.stream, min=f"({group['last-delivered-id']}", max="+", count=STATUS_SCAN_LIMIT
            )
            waiting = len(unread)
        retrying = await self.redis.hlen(self.failures_key)  # type: ignore[misc]
        return QueueStatus(waiting=int(waiting), pending=int(group["pending"]), retrying=int(retrying))
