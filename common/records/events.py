"""Record events on a Redis stream, for the LLM service's analysis and live updates (the
web port's `GET /api/v1/events`).

Published inside the writing transaction (after the flush, before the commit): if Redis
cannot take the event, the write fails too, so no acknowledged change goes unannounced.
A consumer reads the record by id and skips events older than the record's version.
"""

from __future__ import annotations

from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.cache import cache_key
from common.errors import ServiceUnavailable
from common.records.models import Record

RECORD_EVENTS_STREAM = cache_key("records", "events")
STREAM_MAX_LENGTH = 100_000

# `analyzed`: llm_service stored a record's AI result (done or failed). It tells live clients
# to refetch; every consumer of the stream that acts on record changes (the analysis queue)
# must skip it, or each analysis would queue the next.
EventType = Literal["created", "updated", "deleted", "analyzed"]


async def publish_record_event(redis: Redis, event: EventType, record: Record) -> None:
    fields = {
        "type": event,
        "record_id": record.id,
        "owner_id": record.owner_id,
        "version": str(record.version),
        "ai_opt_out": "1" if record.ai_opt_out else "0",
    }
    try:
        await redis.xadd(RECORD_EVENTS_STREAM, fields, maxlen=STREAM_MAX_LENGTH, approximate=True)  # type: ignore[arg-type]
    except (RedisError, OSError) as exc:
        raise ServiceUnavailable("cannot record the change right now; try again shortly") from exc
