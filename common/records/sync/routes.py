"""`/api/v1/sync`: the change feed and a device's push, served by mobile_service and web_service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from common.deps import CurrentUser, RedisDep, SessionDep
from common.errors import ServiceUnavailable, Unauthorized, Unprocessable, error_responses
from common.records.attachments.links import AttachmentLinksDep
from common.records.routes import DeviceId
from common.records.schemas import SyncChanges, SyncCursorAheadError, SyncPush, SyncPushResult
from common.records.sync import service

router = APIRouter(prefix="/api/v1/sync", tags=["sync"], responses=error_responses(Unauthorized, ServiceUnavailable))

MAX_CHANGES_PAGE = 1000
MAX_SEQ = 2**63 - 1  # the column is a BIGINT

Since = Annotated[int, Query(ge=0, le=MAX_SEQ, description="the `cursor` of the previous answer; 0 the first time")]
ChangesLimit = Annotated[int, Query(ge=1, le=MAX_CHANGES_PAGE, description=f"at most {MAX_CHANGES_PAGE}")]


@router.get(
    "/changes",
    response_model=SyncChanges,
    responses={
        409: {"model": SyncCursorAheadError, "description": "`since` is ahead of the server: resync from 0"},
        **error_responses(Unprocessable),
    },
)
async def read_changes(
    user: CurrentUser, session: SessionDep, links: AttachmentLinksDep, since: Since = 0, limit: ChangesLimit = 500
) -> SyncChanges:
    """The caller's records changed since `since`, in the order the changes were made; deleted
    records appear as tombstones `{id, deleted: true, version, updated_at}`. Pass `cursor` as
    the next `since`; while `has_more` is true, ask again at once. A `since` ahead of every
    change the server has numbered (it was restored from a backup) is 409 `cursor_ahead`
    with the server's `cursor`: drop the local cursor and resync from `since=0`."""
    return await service.changes(session, user.id, since=since, limit=limit, links=links)


@router.post("/push", response_model=SyncPushResult, responses=error_responses(Unprocessable))
async def push_changes(
    body: SyncPush,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    links: AttachmentLinksDep,
    device: DeviceId = None,
) -> SyncPushResult:
    """Apply a device's offline edits. Each item is `{id, op: "upsert"|"delete", base_version,
    data}`: `base_version` 0 with a new id creates the record; otherwise it names the version
    the device edited. One result per item, in order: `applied` (with the stored record),
    `conflict` (the record moved on; the server's record is returned to merge with and the
    edit is not applied) or `rejected` (nothing of the item was stored). `code` and `error`
    say why an item was not applied; a malformed item (bad `op`, `id`, `base_version` or
    `data`) is `rejected` on its own line (`invalid_item` / `invalid_data`, the field named)
    and the others still apply. An empty batch answers `{"results": []}`; only a malformed
    body (not an object, `items` not a list, more than 500 items) is a 422, nothing applied.
    Sending the same batch again is safe: items already applied answer `applied` again."""
    return await service.push(session, redis, user.id, body, links=links, device_id=device)
