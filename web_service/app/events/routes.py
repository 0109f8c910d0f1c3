"""`GET /api/v1/events`: the caller's record events as Server-Sent Events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from starlette.responses import StreamingResponse

from common.errors import Forbidden, RateLimited, ServiceUnavailable, Unauthorized, error_responses
from web_service.app.deps import (
    CommitWaitDep,
    CurrentUser,
    HeadCursorDep,
    RecordEventsDep,
    RedisDep,
    SignedInCheckDep,
    WebSettingsDep,
)
from web_service.app.events.stream import EventStream

router = APIRouter(prefix="/api/v1", tags=["records"])

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "An endless stream of events"},
        **error_responses(Unauthorized, Forbidden, RateLimited, ServiceUnavailable),
    },
)
async def record_events(
    user: CurrentUser,
    hub: RecordEventsDep,
    redis: RedisDep,
    settings: WebSettingsDep,
    signed_in: SignedInCheckDep,
    wait_for_commit: CommitWaitDep,
    head_cursor: HeadCursorDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
) -> StreamingResponse:
    """The caller's record changes, live, as Server-Sent Events (read it with `fetch()`, the
    access token in `Authorization`).

    - First, always: `event: hello`, `data: {"cursor": N}`, with no `id:` (Last-Event-ID does
      not move). N is the caller's sync cursor as the stream opens: `/api/v1/sync/changes?since=N`
      answers only what changed after it; every later change also comes as an event.
    - `event: record`, `id: <stream id>`, `data: {"type": "created"|"updated"|"deleted"|"analyzed",
      "record_id": …, "version": …}` (`analyzed`: the AI title, summary and tags are in).
    - `Last-Event-ID: <id>` first replays what the caller missed after that id. When the id
      is too old (trimmed) or unknown: one `event: reset` (`data: {}`; refetch through
      `/api/v1/sync/changes`), then live.
    - `: ping` every `JILU_EVENTS_HEARTBEAT_SECONDS`; `event: end` and the stream closes once
      the session is logged out or the account deactivated. If Redis goes away the stream
      just ends: poll, then reconnect with `Last-Event-ID`.
    - 429 `rate_limited` (with `Retry-After`) when the caller already holds
      `MAX_STREAMS_PER_OWNER` (10) open streams on this process.
    """
    stream = await EventStream.open(
        hub,
        redis,
        user.id,
        last_event_id,
        head_cursor,
        lambda: signed_in(user),
        settings.events_heartbeat_seconds,
        wait_for_commit,
    )
    return StreamingResponse(stream.messages(), media_type="text/event-stream", headers=STREAM_HEADERS)
