"""`GET /api/v1/events`: the caller's record events as Server-Sent Events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from starlette.responses import StreamingResponse

from common.errors import Forbidden, RateLimited, ServiceUnavailable, Unauthorized, error_responses
from web_service.app.deps import CommitWaitDep, CurrentUser, RecordEventsDep, RedisDep, SignedInCheckDep, WebSettingsDep
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
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
) -> StreamingResponse:
    """The caller's record changes, live, as Server-Sent Events (read it with `fetch()`, the
    access token in `Authorization`).

    - `event: record`, `id: <stream id>`, `data: {"type": "created"|"updated"|"deleted"|"analyzed",
      "record_id": …, "version": …}` (`analyzed`: the AI title, summary and tags are in).
    - `Last-Event-ID: <id>` first replays what the caller missed after that id. When the id
      is too old (trimmed) or unknown: one `event: reset` (`data: {}`; refetch through
      `/api/v1/sync/changes`), then live.
    - `: ping` every `JILU_EVENTS_HEARTBEAT_SECONDS`; `event: end` and the stream closes once
      the session is logged out or the account deactivated. If Redis goes away the stream
      just ends: poll, then reconnect with `Last-Event-ID`.
    """
    stream = await EventStream.open(
        hub,
        redis,
        user.id,
        last_event_id,
        lambda: signed_in(user),
        settings.events_heartbeat_seconds,
        wait_for_commit,
    )
    return StreamingResponse(stream.messages(), media_type="text/event-stream", headers=STREAM_HEADERS)
