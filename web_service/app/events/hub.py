"""One reader of the record event stream per process, fanned out to the open event streams.

The reader holds the process's only blocking read (XREAD on its own Redis connection) and
hands each entry to the subscribers of the entry's owner, through bounded queues. A
subscriber whose queue is full has fallen too far behind: its queue is emptied and given a
`Reset` (the client refetches through the sync feed), and it goes on live from there.

After a failed read the reader reads on from the last id it saw, so a dropped connection
loses nothing. If Redis stays away (`RESUME_PAUSES`), every subscriber gets `Closed` (the
clients fall back to polling and come back with `Last-Event-ID`), and the reader tries again
every second from the stream's end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import defaultdict
from contextlib import AsyncExitStack

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.cache import create_redis
from common.errors import RateLimited, ServiceUnavailable
from common.records.events import RECORD_EVENTS_STREAM
from web_service.app.events.entries import Closed, Entry, RecordEvent, Reset

logger = logging.getLogger("jilu.events")

QUEUE_SIZE = 1_000  # events a subscriber may lag behind before it is reset
READ_BLOCK_MS = 5_000
READ_COUNT = 500
RETRY_SECONDS = 1.0
# Pauses before reading on after a failed read; when every retry failed too, Redis is away.
RESUME_PAUSES = (0.2, 1.0)
READY_TIMEOUT = 2.0  # how long a new subscriber waits for the reader to be (back) in place
CANCEL_GRACE = 0.2
STOP_TIMEOUT = 5.0
# Open streams one owner may hold in this process (a few tabs and devices); one more is 429.
MAX_STREAMS_PER_OWNER = 10
STREAM_LIMIT_RETRY_SECONDS = 30

QueueItem = RecordEvent | Reset | Closed


class Subscription:
    """One open event stream: the events of `owner_id`, as the reader sees them."""

    def __init__(self, owner_id: str, size: int) -> None:
        self.owner_id = owner_id
        self.queue: asyncio.Queue[QueueItem] = asyncio.Queue(size)

    def _replace_all(self, item: QueueItem) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(item)

    def offer(self, event: RecordEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # Too far behind: what it would still send is stale; start it over from here.
            self._replace_all(Reset(event.id))

    def close(self) -> None:
        self._replace_all(Closed())

    async def get(self) -> QueueItem:
        return await self.queue.get()


class RecordEventHub:
    def __init__(self, redis: Redis, *, stream: str = RECORD_EVENTS_STREAM, queue_size: int = QUEUE_SIZE) -> None:
        self.redis = redis
        self.stream = stream
        self.queue_size = queue_size
        self._subscribers: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def subscriber_count(self) -> int:
        return sum(len(group) for group in self._subscribers.values())

    def start(self) -> None:
        self._task = asyncio.create_task(self._read_loop(), name="record-events-reader")

    async def stop(self) -> None:
        """Stop reading, end every open stream, close the reader's connection."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            _, pending = await asyncio.wait([self._task], timeout=CANCEL_GRACE)
            if pending:
                # redis-py can swallow a cancellation that lands mid-command; then the
                # blocking read only ends when its connection does.
                await self.redis.connection_pool.disconnect()
                await asyncio.wait(pending, timeout=STOP_TIMEOUT)
            self._task = None
        self._close_all()
        await self.redis.aclose()

    async def subscribe(self, owner_id: str) -> Subscription:
        """A subscription to `owner_id`'s events from now on; 503 while Redis is away, 429
        when the owner already holds `MAX_STREAMS_PER_OWNER` here."""
        try:
            await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT)
        except TimeoutError:
            raise ServiceUnavailable("live events are unavailable; try again shortly") from None
        # Checked after the wait, with no await before the add, so concurrent opens cannot overshoot.
        if len(self._subscribers.get(owner_id, ())) >= MAX_STREAMS_PER_OWNER:
            raise RateLimited(STREAM_LIMIT_RETRY_SECONDS, "too many open event streams; close one and try again")
        subscription = Subscription(owner_id, self.queue_size)
        self._subscribers[owner_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        group = self._subscribers.get(subscription.owner_id)
        if group is not None:
            group.discard(subscription)
            if not group:
                del self._subscribers[subscription.owner_id]

    def _close_all(self) -> None:
        self._ready.clear()
        for group in self._subscribers.values():
            for subscription in group:
                subscription.close()
        self._subscribers.clear()

    async def _stream_end(self) -> str:
        """The id of the stream's newest entry ever, so the next read misses nothing."""
        try:
            info = await self.redis.xinfo_stream(self.stream)
        except RedisError as exc:
            if "no such key" in str(exc).lower():
                return "0-0"
            raise
        return str(info["last-generated-id"])

    def _dispatch(self, entry_id: str, fields: dict[str, str]) -> None:
        group = self._subscribers.get(fields.get("owner_id", ""))
        if not group:
            return
        event = RecordEvent.from_entry(entry_id, fields)
        if event is None:
            return
        for subscription in list(group):
            subscription.offer(event)

    async def _read_loop(self) -> None:
        last_id: str | None = None
        failures = 0
        while not self._stopping:
            try:
                if last_id is None:
                    last_id = await self._stream_end()
                    self._ready.set()
                reply: list[tuple[str, list[Entry]]] = await self.redis.xread(  # type: ignore[assignment]
                    {self.stream: last_id}, count=READ_COUNT, block=READ_BLOCK_MS
                )
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                if self._stopping:  # redis-py may turn the cancellation of a read into an error
                    return
                if last_id is not None and failures < len(RESUME_PAUSES):
                    # A dropped connection: read on from the same id, the streams notice nothing.
                    await asyncio.sleep(RESUME_PAUSES[failures])
                    failures += 1
                    continue
                if self._ready.is_set():
                    logger.warning("record events: Redis is unavailable; open event streams end", exc_info=True)
                self._close_all()
                last_id = None
                await asyncio.sleep(RETRY_SECONDS)
                continue
            failures = 0
            if self._stopping:
                return
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    last_id = entry_id
                    self._dispatch(entry_id, fields)


def start_record_events(redis_url: str, stack: AsyncExitStack) -> RecordEventHub:
    """At web_service's start-up: the hub, running on a Redis connection of its own (to
    `redis_url`), named so `CLIENT LIST` tells it apart; stopped when the app shuts down."""
    name = f"jilu-web-events-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    # The read blocks up to READ_BLOCK_MS; the socket must wait longer than that.
    redis = create_redis(redis_url, client_name=name, socket_timeout=READ_BLOCK_MS / 1000 + 5)
    hub = RecordEventHub(redis)
    hub.start()
    stack.push_async_callback(hub.stop)
    return hub
