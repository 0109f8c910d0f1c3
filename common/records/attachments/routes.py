"""`/api/v1/records/{id}/attachments`, `/api/v1/attachments/{id}` and
`/api/v1/records/{id}/purge`: served by mobile_service and web_service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request, Response, status
from fastapi.responses import FileResponse

from common.bodies import own_size_cap
from common.deps import (
    CurrentUser,
    RateLimiterDep,
    RedisDep,
    SessionDep,
    SessionmakerDep,
    SettingsDep,
    WriteSessionmakerDep,
)
from common.errors import Conflict, NotFound, RateLimited, ServiceUnavailable, Unauthorized, error_responses
from common.records import purge
from common.records.attachments import links, service
from common.records.attachments.sniff import ALLOWED_TYPES, AUDIO_TYPES, IMAGE_TYPES, PDF_TYPE
from common.records.attachments.staging import stage_upload
from common.records.attachments.storage import AttachmentStorage
from common.records.models import Attachment
from common.records.schemas import AttachmentUploaded
from common.records.views import attachment_public
from common.uploads import RECEIVE_ERRORS, file_body

router = APIRouter(
    prefix="/api/v1", tags=["attachments"], responses=error_responses(Unauthorized, NotFound, ServiceUnavailable)
)
# Signed URLs: no Authorization header, so no 401 either.
files_router = APIRouter(
    prefix="/api/v1", tags=["attachments"], responses=error_responses(NotFound, ServiceUnavailable)
)

DeviceId = Annotated[str | None, Header(alias="X-Device-ID", max_length=64, description="the sending device")]
# Uploads per user: plenty for a person, a brake on a runaway script.
UPLOAD_RATE = "120/minute"
INLINE_TYPES = IMAGE_TYPES | AUDIO_TYPES | {PDF_TYPE}
THUMBNAIL_TYPE = "image/jpeg"
BEARER_CACHE = "private, no-cache"  # keep a copy, but ask (If-None-Match) before using it


def content_disposition(disposition: str, filename: str | None) -> str:
    """`inline` or `attachment`, with the name as an ASCII fallback and RFC 5987 UTF-8."""
    if not filename:
        return disposition
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in filename)
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of `If-None-Match` (a list, or `*`) with our strong `etag`."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


async def send_file(
    request: Request, attachment: Attachment, path: Path, *, thumbnail: bool, cache_control: str
) -> Response:
    """The file (ranges supported) with its `ETag` (the variant's sha256), or 304 with no
    body when `If-None-Match` names it."""
    etag = f'"{await service.variant_sha256(attachment, path, thumbnail=thumbnail)}"'
    cache = {"ETag": etag, "Cache-Control": cache_control}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=cache)
    media_type = THUMBNAIL_TYPE if thumbnail else attachment.content_type
    disposition = "inline" if media_type in INLINE_TYPES else "attachment"
    headers = {
        **cache,
        "Content-Disposition": content_disposition(disposition, None if thumbnail else attachment.filename),
        "X-Content-Type-Options": "nosniff",
    }
    return FileResponse(path, media_type=media_type, headers=headers)


_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the file, or its JPEG thumbnail",
        # What an upload may be (read from its bytes) and the JPEG thumbnail: sent as that type.
        "content": {media_type: {} for media_type in sorted(ALLOWED_TYPES | {THUMBNAIL_TYPE})},
        "headers": {"ETag": {"description": "the quoted sha256 of the bytes sent", "schema": {"type": "string"}}},
    },
    304: {"description": "`If-None-Match` named the current ETag: use your copy"},
}


@router.post(
    "/records/{record_id}/attachments",
    status_code=status.HTTP_201_CREATED,
    response_model=AttachmentUploaded,
    openapi_extra=file_body("the file: an image, audio, a PDF or UTF-8 text, at most `JILU_MAX_UPLOAD_MB`"),
    responses={
        201: {
            "description": "the attachment, and the record's new version",
            "headers": {"ETag": {"description": 'the record\'s new version, e.g. "4"', "schema": {"type": "string"}}},
        },
        **error_responses(Conflict, RateLimited, *RECEIVE_ERRORS),
    },
)
@own_size_cap  # streamed by stage_upload (common.uploads), capped at JILU_MAX_UPLOAD_MB
async def upload_attachment(
    record_id: str,
    request: Request,
    response: Response,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    limiter: RateLimiterDep,
    sessionmaker: SessionmakerDep,
    urls: links.AttachmentLinksDep,
    device: DeviceId = None,
) -> AttachmentUploaded:
    """Attach a file to one of your records: multipart/form-data, the file in the field
    `file`, at most `JILU_MAX_UPLOAD_MB`. The type is read from the bytes, whatever the file
    is called: images (JPEG, PNG, WebP, GIF, HEIC), audio (M4A, MP3, WAV, Ogg, WebM), PDF and
    UTF-8 text; anything else is refused with 415. Images get a thumbnail. The record moves
    to a new version, as with any edit: the answer's `record_version` and `ETag` carry it,
    and `/api/v1/sync/changes` shows the record with its new `attachments`."""
    await limiter.check(UPLOAD_RATE, "upload", user.id)
    await service.ensure_record(sessionmaker, user.id, record_id)
    storage = AttachmentStorage(settings.data_dir)
    staged = await stage_upload(request, storage, settings.max_upload_mb * 1024 * 1024)
    try:
        await service.add_thumbnail(storage, staged)
        attachment, record = await service.attach(session, redis, storage, user.id, record_id, staged, device_id=device)
    finally:
        staged.discard()
    response.headers["ETag"] = f'"{record.version}"'
    return AttachmentUploaded(**dict(attachment_public(attachment, urls)), record_version=record.version)


@router.get("/attachments/{attachment_id}", response_class=FileResponse, responses=_FILE_RESPONSES)
async def download_attachment(
    attachment_id: str,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    thumb: Annotated[bool, Query(description="the JPEG thumbnail instead (404 when there is none)")] = False,
) -> Response:
    """One of your attachments, as uploaded (ranges supported), or with `?thumb=1` its
    thumbnail. Images, audio and PDF are sent `inline`, anything else as a download.
    `ETag` is the sha256 of the bytes sent; `If-None-Match` with it answers 304."""
    storage = AttachmentStorage(settings.data_dir)
    attachment, path = await service.file_to_send(session, storage, user.id, attachment_id, thumbnail=thumb)
    return await send_file(request, attachment, path, thumbnail=thumb, cache_control=BEARER_CACHE)


@files_router.get(
    "/files/{attachment_id}/{variant}",
    response_class=FileResponse,
    responses=_FILE_RESPONSES,
    openapi_extra={"security": []},
)
async def download_signed(
    attachment_id: str,
    variant: links.Variant,
    request: Request,
    session: SessionDep,
    redis: RedisDep,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    owner: Annotated[str, Query(max_length=64, description="the owner the link was signed for")],
    expires: Annotated[int, Query(ge=0, description="Unix time after which the link is refused")],
    sig: Annotated[str, Query(pattern=links.SIGNATURE_PATTERN, description="the link's signature (64 hex digits)")],
) -> Response:
    """An attachment (`original`) or its thumbnail (`thumb`) by a signed URL, as found in
    `url` and `thumbnail_url` of every attachment the API shows: no `Authorization`
    header needed, so an image loader or `<img src>` can fetch it. Refused with 404
    (`not_found`) after `expires`, when any part of the URL was changed, when the
    attachment was removed or its record deleted, and while the owner's account is
    deactivated. `ETag` and `If-None-Match` as on
    `/api/v1/attachments/{id}`; `Cache-Control: private, max-age` up to the expiry."""
    now = links.now()
    links.check(settings.secret, attachment_id, variant, owner, expires, sig, now)
    storage = AttachmentStorage(settings.data_dir)
    thumbnail = variant == "thumb"
    attachment, path = await service.file_for_link(
        redis, sessionmaker, session, storage, owner, attachment_id, thumbnail=thumbnail
    )
    cache_control = f"private, max-age={max(0, int(expires - now))}"
    return await send_file(request, attachment, path, thumbnail=thumbnail, cache_control=cache_control)


@router.delete("/attachments/{attachment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_attachment(
    attachment_id: str,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    write_sessionmaker: WriteSessionmakerDep,
    background: BackgroundTasks,
    device: DeviceId = None,
) -> Response:
    """Take an attachment off its record (a new version of the record). Its file is deleted
    once no other attachment of yours has the same content."""
    sha256 = await service.remove(session, redis, user.id, attachment_id, device_id=device)
    # Runs after the commit: a file is only deleted once its last row is gone for good.
    storage = AttachmentStorage(settings.data_dir)
    background.add_task(service.collect_unreferenced, write_sessionmaker, storage, user.id, [sha256])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/records/{record_id}/purge", status_code=status.HTTP_204_NO_CONTENT, tags=["records"], operation_id="records_purge"
)
async def purge_record(
    record_id: str,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    write_sessionmaker: WriteSessionmakerDep,
    background: BackgroundTasks,
) -> Response:
    """Delete a record of yours for good, now rather than after `JILU_TRASH_DAYS`: only a
    record already deleted (404 otherwise). Its content and attachments are gone; it stays in
    the sync feed as a tombstone. Purging it again changes nothing."""
    shas = await purge.purge_owned(session, redis, user.id, record_id)
    if shas:
        storage = AttachmentStorage(settings.data_dir)
        background.add_task(service.collect_unreferenced, write_sessionmaker, storage, user.id, shas)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
