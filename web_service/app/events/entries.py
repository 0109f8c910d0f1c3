"""Record events as the browser gets them, and the ids of the stream they come from."""

from __future__ import annotations

import json
from dataclasses import dataclass

BROWSER_EVENT_TYPES = frozenset({"created", "updated", "deleted", "analyzed"})

StreamId = tuple[int, int]
# A stream entry as redis-py returns it with `decode_responses=True`.
Entry = tuple[str, dict[str, str]]


def parse_stream_id(value: str) -> StreamId | None:
    """`1700000000000-3` as `(1700000000000, 3)`; None for anything else."""
    milliseconds, separator, sequence = value.strip().partition("-")
    if not (separator and milliseconds.isdigit() and sequence.isdigit()):
        return None
    return int(milliseconds), int(sequence)


@dataclass(frozen=True)
class RecordEvent:
    """One entry of the stream that the browser may see."""

    id: str
    position: StreamId
    owner_id: str
    type: str
    record_id: str
    version: int

    @classmethod
    def from_entry(cls, entry_id: str, fields: dict[str, str]) -> RecordEvent | None:
        position = parse_stream_id(entry_id)
        kind = fields.get("type", "")
        if position is None or kind not in BROWSER_EVENT_TYPES or not fields.get("record_id"):
            return None
        try:
            version = int(fields.get("version", "0") or 0)
        except ValueError:
            return None
        return cls(entry_id, position, fields.get("owner_id", ""), kind, fields["record_id"], version)


@dataclass(frozen=True)
class Reset:
    """The subscriber missed events: the client refetches `/api/v1/sync/changes`. `id` is the
    stream position from which it may resume, when known."""

    id: str | None = None


@dataclass(frozen=True)
class Closed:
    """The reader stopped (Redis went away, or shutdown): the stream ends."""


def sse_record(event: RecordEvent) -> str:
    data = {"type": event.type, "record_id": event.record_id, "version": event.version}
    return f"id: {event.id}\nevent: record\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def sse_reset(reset: Reset) -> str:
    head = f"id: {reset.id}\n" if reset.id else ""
    return f"{head}event: reset\ndata: {{}}\n\n"


def sse_hello(cursor: int) -> str:
    # No `id:`: the hello must not move the client's Last-Event-ID.
    return f"event: hello\ndata: {json.dumps({'cursor': cursor}, separators=(',', ':'))}\n\n"


SSE_END = "event: end\ndata: {}\n\n"
SSE_PING = ": ping\n\n"
