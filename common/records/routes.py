"""`/api/v1/records`, `/api/v1/trash`, `/api/v1/tags`, `/api/v1/search`: served by mobile_service
and web_service."""

from __future__ import annotations

from typing import Annotated, get_args

from fastapi import APIRouter, Depends, Header, Query, Response, status
from pydantic import Field

from common.deps import CurrentUser, RedisDep, SessionDep
from common.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PreconditionRequired,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
    VersionConflict,
    error_responses,
)
from common.pagination import Page, PageCursor, PageLimit
from common.records import search, service
from common.records.attachments.links import AttachmentLinksDep
from common.records.schemas import (
    Kind,
    RecordCreate,
    RecordPublic,
    RecordUpdate,
    SearchHit,
    TagCount,
    TrashedRecord,
)
from common.records.tags import normalise_tag
from common.records.views import record_page_json, record_public, trashed_record
from common.wire_types import IsoAwareDatetime

router = APIRouter(prefix="/api/v1", tags=["records"], responses=error_responses(Unauthorized, ServiceUnavailable))

DeviceId = Annotated[str | None, Header(alias="X-Device-ID", max_length=64, description="the sending device")]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=32, description='the version edited, e.g. "3"')]
MAX_SEARCH_RESULTS = 100
MAX_FILTER_TAGS = 10


async def filters_from_query(
    kind: Annotated[
        list[Kind] | None, Query(max_length=len(get_args(Kind)), description="repeat for any of several kinds")
    ] = None,
    tag: Annotated[
        list[Annotated[str, Field(max_length=64)]] | None,
        Query(max_length=MAX_FILTER_TAGS, description="repeat for records with all of several tags"),
    ] = None,
    occurred_from: Annotated[IsoAwareDatetime | None, Query(alias="from")] = None,
    occurred_to: Annotated[IsoAwareDatetime | None, Query(alias="to")] = None,
) -> search.SearchFilters:
    """`kind=note&kind=diary`: records of any of these kinds; `tag=a&tag=b`: records with
    every one of these tags; `from` (inclusive) and `to` (exclusive) bound `occurred_at`."""
    tag_names: list[str] = []
    for n, name in enumerate(tag or []):
        try:
            normalised = normalise_tag(name) if name else None
        except ValueError as exc:  # too long once normalised: the caller's mistake, not a 500
            raise Unprocessable(f"query.tag.{n}", str(exc)) from exc
        if normalised and normalised not in tag_names:
            tag_names.append(normalised)
    kinds = tuple(dict.fromkeys(kind or []))
    return search.SearchFilters(kinds, tuple(tag_names), occurred_from, occurred_to)


Filters = Annotated[search.SearchFilters, Depends(filters_from_query)]


def _with_etag(response: Response, record: RecordPublic) -> RecordPublic:
    response.headers["ETag"] = f'"{record.version}"'
    return record


@router.post(
    "/records",
    status_code=status.HTTP_201_CREATED,
    response_model=RecordPublic,
    responses={
        200: {"model": RecordPublic, "description": "already created with that id"},
        **error_responses(Conflict),
    },
)
async def create_record(
    body: RecordCreate,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    response: Response,
    links: AttachmentLinksDep,
    device: DeviceId = None,
) -> RecordPublic:
    """Create a record. With a client-made `id` the call is idempotent: repeating it answers
    200 with the record already stored."""
    record, created = await service.create(session, redis, user.id, body, device_id=device)
    if not created:
        response.status_code = status.HTTP_200_OK
    return _with_etag(response, record_public(record, links))


@router.get("/records", response_model=Page[RecordPublic], responses=error_responses(BadRequest))
async def list_records(
    user: CurrentUser,
    session: SessionDep,
    filters: Filters,
    links: AttachmentLinksDep,
    response: Response,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Response:
    """The caller's records, newest `occurred_at` first; filter by kind (repeat `kind` for any
    of several), tag (repeat `tag` for records with all of several) and time range
    (`from` inclusive, `to` exclusive). Keep the same filters while following `next_cursor`."""
    listed, next_cursor = await service.list_page(session, user.id, limit=limit, cursor=cursor, filters=filters)
    # The page is serialised here, once, from rows (`views.record_page_json`): the response
    # model above still gives the schema. Headers a dependency set go along, as FastAPI does.
    answer = Response(record_page_json(listed, links, next_cursor), media_type="application/json")
    answer.headers.raw.extend(response.headers.raw)
    return answer


@router.get("/records/{record_id}", response_model=RecordPublic, responses=error_responses(NotFound))
async def read_record(
    record_id: str, user: CurrentUser, session: SessionDep, response: Response, links: AttachmentLinksDep
) -> RecordPublic:
    """One record of the caller's."""
    return _with_etag(response, record_public(await service.get(session, user.id, record_id), links))


@router.patch(
    "/records/{record_id}",
    response_model=RecordPublic,
    responses=error_responses(NotFound, VersionConflict, PreconditionRequired),
)
async def update_record(
    record_id: str,
    body: RecordUpdate,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    response: Response,
    links: AttachmentLinksDep,
    if_match: IfMatch = None,
    device: DeviceId = None,
) -> RecordPublic:
    """Edit a record. Name the version you edited (`If-Match: "3"` or `"version": 3`); if the
    record has moved on since, the answer is 409 with the `current` record to merge with."""
    record = await service.update(
        session,
        redis,
        user.id,
        record_id,
        body,
        links=links,
        if_match=service.parse_if_match(if_match),
        device_id=device,
    )
    return _with_etag(response, record_public(record, links))


@router.delete(
    "/records/{record_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(NotFound, VersionConflict, PreconditionRequired),
)
async def delete_record(
    record_id: str,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    links: AttachmentLinksDep,
    if_match: IfMatch = None,
) -> Response:
    """Delete a record (it stays in the sync feed as a tombstone). `If-Match` is optional; one
    that names no version (`"3"`) is 428, like an edit's."""
    await service.soft_delete(
        session, redis, user.id, record_id, links=links, if_match=service.parse_if_match(if_match)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/trash", response_model=Page[TrashedRecord], responses=error_responses(BadRequest))
async def list_trash(
    user: CurrentUser, session: SessionDep, links: AttachmentLinksDep, limit: PageLimit = 50, cursor: PageCursor = None
) -> Page[TrashedRecord]:
    """The caller's deleted records not yet purged, most recently deleted first, each with
    its `deleted_at`. They are purged `JILU_TRASH_DAYS` after `deleted_at`; until then
    `POST /api/v1/records/{id}/restore` brings one back."""
    rows, next_cursor = await service.trash_page(session, user.id, limit=limit, cursor=cursor)
    return Page[TrashedRecord](items=[trashed_record(r, links) for r in rows], next_cursor=next_cursor)


@router.post("/records/{record_id}/restore", response_model=RecordPublic, responses=error_responses(NotFound))
async def restore_record(
    record_id: str,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    response: Response,
    links: AttachmentLinksDep,
    device: DeviceId = None,
) -> RecordPublic:
    """Take a record of yours out of the trash. It is back in lists, search, tags and the
    sync feed as it was deleted (attachments included, a share link still revoked), at a
    new version (`ETag`). 404 unless the record is in your trash (live, purged or unknown)."""
    record = await service.restore(session, redis, user.id, record_id, device_id=device)
    return _with_etag(response, record_public(record, links))


@router.get("/tags", response_model=list[TagCount])
async def list_tags(user: CurrentUser, session: SessionDep) -> list[TagCount]:
    """The caller's tags with how many live records carry each, most used first."""
    return await service.tag_counts(session, user.id)


@router.get("/search", response_model=Page[SearchHit], responses=error_responses(Unprocessable))
async def search_records(
    user: CurrentUser,
    session: SessionDep,
    filters: Filters,
    links: AttachmentLinksDep,
    q: Annotated[str, Query(min_length=1, max_length=200, description="Chinese, English or both")],
    limit: Annotated[int, Query(ge=1, le=MAX_SEARCH_RESULTS)] = 20,
    cursor: PageCursor = None,
) -> Page[SearchHit]:
    """The caller's records that match every word of `q`, best first, each with a highlighted
    excerpt; the same filters as `GET /api/v1/records`. Pages: pass `next_cursor` back as
    `cursor` with the same `q` and filters (a cursor of another search, or of another user,
    is 422); it is null on the last page and after the first 1,000 results."""
    hits, next_cursor = await search.search_page(session, user.id, q, limit=limit, cursor=cursor, filters=filters)
    items = [
        SearchHit(
            record=record_public(r, links),
            score=score,
            highlight=snippet.text,
            matched_in="link" if snippet.in_link else "attachment" if snippet.attachment_id else "record",
            attachment_id=snippet.attachment_id,
        )
        for r, score, snippet in hits
    ]
    return Page[SearchHit](items=items, next_cursor=next_cursor)
