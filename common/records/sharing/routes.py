"""`GET|POST|DELETE /api/v1/records/{id}/share` (the owner) and `/api/v1/public/{slug}` (anyone)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from common.deps import ClientAddressDep, CurrentUser, RateLimiterDep, RedisDep, SessionDep, WebBaseUrlDep
from common.errors import NotFound, RateLimited, ServiceUnavailable, Unauthorized, error_responses
from common.records.schemas import PublicRecord, ShareLink
from common.records.sharing import service

router = APIRouter(prefix="/api/v1", tags=["sharing"], responses=error_responses(ServiceUnavailable))

# A public answer must not outlive its link (no cache keeps it after revocation) nor be indexed.
PUBLIC_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow"}
Slug = Annotated[str, Path(max_length=200, description="the slug of a share link")]


@router.get(
    "/records/{record_id}/share",
    response_model=ShareLink,
    responses=error_responses(Unauthorized, NotFound),
)
async def read_share(record_id: str, user: CurrentUser, session: SessionDep, web_base_url: WebBaseUrlDep) -> ShareLink:
    """The public link of one of your records, as sharing it answered. 404 when the record is
    not shared (or not yours); reading never makes a link — `POST` does. `url` is absolute,
    on the web port (`JILU_PUBLIC_WEB_URL`) whichever port you asked."""
    return await service.current_link(session, user.id, record_id, web_base_url)


@router.post(
    "/records/{record_id}/share",
    status_code=status.HTTP_201_CREATED,
    response_model=ShareLink,
    responses={
        200: {"model": ShareLink, "description": "already shared: the same link"},
        **error_responses(Unauthorized, NotFound),
    },
)
async def share_record(
    record_id: str,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    web_base_url: WebBaseUrlDep,
    response: Response,
) -> ShareLink:
    """Make a public link to one of your records; anyone with the link can read it without
    logging in. Sharing a shared record again answers 200 with the same link. `url` is
    absolute, on the web port (`JILU_PUBLIC_WEB_URL`) whichever port you asked."""
    link, created = await service.share(session, redis, user.id, record_id, web_base_url)
    if not created:
        response.status_code = status.HTTP_200_OK
    return link


@router.delete(
    "/records/{record_id}/share",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(Unauthorized, NotFound),
)
async def revoke_share(record_id: str, user: CurrentUser, session: SessionDep, redis: RedisDep) -> Response:
    """Take a record's public link down. The link is dead for good; sharing the record again
    makes a new one."""
    await service.revoke(session, redis, user.id, record_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/public/{slug}", response_model=PublicRecord, responses=error_responses(NotFound, RateLimited))
async def read_shared_record(
    slug: Slug, session: SessionDep, limiter: RateLimiterDep, client: ClientAddressDep, response: Response
) -> PublicRecord:
    """A shared record, without login: its kind, title, content, tags and dates only.
    Unknown, revoked and deleted links all answer 404."""
    await service.count_public_read(limiter, client)
    record = await service.shared_record(session, slug)
    if record is None:
        raise NotFound("no such link", headers=PUBLIC_HEADERS)
    response.headers.update(PUBLIC_HEADERS)
    return record
