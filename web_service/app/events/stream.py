"""One browser's event stream: `hello` with the caller's sync cursor, the replay after
`Last-Event-ID`, then live events, heartbeats and, once the caller's session is over, `end`.

Gap-free resumption: the subscription is taken first, so every entry added from then on
reaches its queue; the sync cursor is read after it, so a change either is in the feed up to
that cursor or comes live (or both); the replay (XRANGE) then reads what the stream holds after the client's
id, and live events at or before the last entry the replay read are dropped as duplicates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from common import draining
from common.errors import ServiceUnavailable
from web_service.app.events.committed import WaitForCommit
from web_service.app.events.entries import (
    SSE_END,
    SSE_PING,
    Closed,
    Entry,
    RecordEvent,
    Reset,
    StreamId,
    parse_stream_id,
    sse_hello,
    sse_record,
    sse_reset,
)
from web_service.app.events.hub import RecordEventHub, Subscription

logger = logging.getLogger("jilu.events")

REPLAY_BATCH = 500

# Whether the caller may go on listening (its session open, its account active).
StillSignedIn = Callable[[], Awaitable[bool]]
# The owner's current sync cursor (`sync.service.head_cursor`, in a session of its own).
HeadCursor = Callable[[str], Awaitable[int]]


class ResumePoint:
    """Where a stream starts: `replay_after` (replay what follows that id), or `reset` (the
    client's id is unknown or trimmed away: it refetches, and resumes at `reset.id`)."""

    def __init__(self, replay_after: str | None = None, reset: Reset | None = None) -> None:
        self.replay_after = replay_after
        self.reset = reset


async def resume_point(redis: Redis, stream: str, last_event_id: str | None) -> ResumePoint:
    """Decide how to resume after `last_event_id` (None: live only)."""
    if last_event_id is None:
        return ResumePoint()
    try:
        info = await redis.xinfo_stream(stream)
    except RedisError as exc:
        if "no such key" not in str(exc).lower():
            raise
        return ResumePoint(reset=Reset())
    newest = str(info["last-generated-id"])
    reset = ResumePoint(reset=Reset(newest))
    wanted, newest_position = parse_stream_id(last_event_id), parse_stream_id(newest)
    if wanted is None or newest_position is None or wanted > newest_position:
        return reset  # not an id of this stream
    first = info.get("first-entry")
    if first is None:  # everything was trimmed: only the very newest id misses nothing
        return ResumePoint() if wanted == newest_position else reset
    oldest = parse_stream_id(str(first[0]))
    if oldest is None or wanted < oldest:
        return reset  # what followed it may have been trimmed away
    return ResumePoint(replay_after=last_event_id)


class EventStream:
    """The messages of one open stream, as SSE text."""

    def __init__(
        self,
        hub: RecordEventHub,
        redis: Redis,
        subscription: Subscription,
        start: ResumePoint,
        cursor: int,
        still_signed_in: StillSignedIn,
        heartbeat_seconds: float,
        wait_for_commit: WaitForCommit,
    ) -> None:
        self.hub = hub
        self.cursor = cursor
        self.wait_for_commit = wait_for_commit
        self.redis = redis
        self.subscription = subscription
        self.start = start
        self.still_signed_in = still_signed_in
        self.heartbeat_seconds = heartbeat_seconds
        # Live events at or before this position were sent already (by the replay).
        self.sent_up_to: StreamId | None = None

    @classmethod
    async def open(
        cls,
        hub: RecordEventHub,
        redis: Redis,
        owner_id: str,
        last_event_id: str | None,
        head_cursor: HeadCursor,
        still_signed_in: StillSignedIn,
        heartbeat_seconds: float,
        wait_for_commit: WaitForCommit,
    ) -> EventStream:
        """Subscribe, then read the sync cursor and decide where to start; 503 when Redis or
        the database cannot be reached."""
        subscription = await hub.subscribe(owner_id)
        try:
            cursor = await head_cursor(owner_id)
            start = await resume_point(redis, hub.stream, last_event_id)
        except (RedisError, OSError, SQLAlchemyError) as exc:
            hub.unsubscribe(subscription)
            raise ServiceUnavailable("live events are unavailable; try again shortly") from exc
        except BaseException:
            hub.unsubscribe(subscription)
            raise
        return cls(hub, redis, subscription, start, cursor, still_signed_in, heartbeat_seconds, wait_for_commit)

    async def _replay(self, after: str) -> AsyncIterator[RecordEvent]:
        owner = self.subscription.owner_id
        self.sent_up_to = parse_stream_id(after)
        while True:
            entries: list[Entry] = await self.redis.xrange(  # type: ignore[assignment]
                self.hub.stream, min=f"({after}", max="+", count=REPLAY_BATCH
            )
            for entry_id, fields in entries:
                after = entry_id
                self.sent_up_to = parse_stream_id(entry_id)
                event = RecordEvent.from_entry(entry_id, fields)
                if event is not None and event.owner_id == owner:
                    yield event
            if len(entries) < REPLAY_BATCH:
                return

    def _is_new(self, event: RecordEvent) -> bool:
        return self.sent_up_to is None or event.position > self.sent_up_to

    async def messages(self) -> AsyncIterator[str]:
        """The stream's text, until the client leaves, its session ends (`end`), Redis goes
        away or the service shuts down (the stream just ends: reconnect with Last-Event-ID)."""
        loop = asyncio.get_running_loop()
        stop_listening = draining.listen(self.subscription.close)
        try:
            yield sse_hello(self.cursor)
            if self.start.reset is not None:
                yield sse_reset(self.start.reset)
                self.sent_up_to = parse_stream_id(self.start.reset.id or "")
            elif self.start.replay_after is not None:
                async for event in self._replay(self.start.replay_after):
                    yield sse_record(event)
            next_beat = loop.time() + self.heartbeat_seconds
            while True:
                try:
                    item = await asyncio.wait_for(self.subscription.get(), max(0.0, next_beat - loop.time()))
                except TimeoutError:
                    if not await self.still_signed_in():
                        yield SSE_END
                        return
                    yield SSE_PING
                    next_beat = loop.time() + self.heartbeat_seconds
                    continue
                if isinstance(item, Closed):
                    return
                if isinstance(item, Reset):
                    yield sse_reset(item)
                    self.sent_up_to = parse_stream_id(item.id or "")
                elif self._is_new(item):
                    await self.wait_for_commit(item)
                    yield sse_record(item)
        except (RedisError, OSError, SQLAlchemyError) as exc:
            # Redis (or the database) went away: the client falls back to polling.
            logger.warning("an event stream ended early: %s", type(exc).__name__)
            return
        finally:
            stop_listening()
            self.hub.unsubscribe(self.subscription)
