"""The analysis job queue: the record event stream read through a Redis consumer group.

Durability comes from the stream itself. An entry stays in the group's pending list until a
worker acknowledges it, which it does only once the job is finished (or can never succeed).
A worker heartbeats the entry it is working on (XCLAIM to itself resets its idle time), so
entries that go idle belong to a worker that died or to a job waiting for its retry: a
reclaimer takes them over once their idle time passes the back-off for their delivery
count. XCLAIM with a minimum idle time is atomic, so each job is done by one worker.

The delivery count is not the attempt count: an entry is also delivered again when its
record had not committed yet, or when its worker died. Failed provider attempts are counted
in a hash of their own, cleared when the entry is acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from common.cache import cache_key
from common.records.events import RECORD_EVENTS_STREAM

GROUP = "analysis"
FAILURES_KEY = cache_key("analysis", "failures")


@dataclass(frozen=True)
class Job:
    entry_id: str
    fields: dict[str, str]
    deliveries: int = 1

    @property
    def record_id(self) -> str:
        return self.fields.get("record_id", "")

    @property
    def version(self) -> int:
        return int(self.fields.get("version", "0") or 0)


class AnalysisQueue:
    def __init__(self, redis: Redis, stream: str = RECORD_EVENTS_STREAM, group: str = GROUP) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group

    async def ensure_group(self) -> None:
        """Create the consumer group (from the start of the stream) unless it exists."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, consumer: str, block_ms: int) -> Job | None:
        """The next new entry for `consumer`, waiting up to `block_ms`."""
        reply = await self.redis.xreadgroup(self.group, consumer, {self.stream: ">"}, count=1, block=block_ms)
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                return Job(entry_id, fields)
        return None

    async def ack(self, job: Job) -> None:
        await self._ack(job.entry_id)

    async def _ack(self, entry_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, entry_id)
            pipe.hdel(FAILURES_KEY, entry_id)
            await pipe.execute()

    async def count_failure(self, job: Job) -> int:
        """Count one failed attempt at `job`; the number of failed attempts so far."""
        return int(await self.redis.hincrby(FAILURES_KEY, job.entry_id, 1))  # type: ignore[misc]

    async def heartbeat(self, consumer: str, job: Job) -> None:
        """Reset the entry's idle time: it is being worked on."""
        await self.redis.xclaim(self.stream, self.group, consumer, 0, [job.entry_id], justid=True)

    async def reclaim(self, consumer: str, backoff_ms: Callable[[int], int], limit: int = 20) -> list[Job]:
        """Take over pending entries idle longer than the back-off for their delivery count."""
        pending = await self.redis.xpending_range(self.stream, self.group, min="-", max="+", count=limit)
        jobs = []
        for entry in pending:
            min_idle = backoff_ms(int(entry["times_delivered"]))
            if int(entry["time_since_delivered"]) < min_idle:
                continue
            claimed = await self.redis.xclaim(self.stream, self.group, consumer, min_idle, [entry["message_id"]])
            for entry_id, fields in claimed:
                if fields:  # an entry trimmed from the stream comes back empty
                    jobs.append(Job(entry_id, fields, int(entry["times_delivered"]) + 1))
                else:
                    await self._ack(entry_id)
        return jobs

    async def enqueue(self, fields: dict[str, str]) -> str:
        return str(await self.redis.xadd(self.stream, fields))  # type: ignore[arg-type]
