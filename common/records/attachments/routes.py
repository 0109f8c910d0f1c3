"""`/api/v1/records/{id}/attachments`, `/api/v1/attachments/{id}` and
`/api/v1/records/{id}/purge`: served by mobile_service and web_service."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request, Response, status
from fastapi.responses import FileResponse

from common.deps import RedisDep, SessionDep, SettingsDep
from common.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
    error_responses,
)
from common.records import purge
from common.records.attachments import service
from common.records.attachments.sniff import AUDIO_TYPES, IMAGE_TYPES, PDF_TYPE
from common.records.attachments.storage import AttachmentStorage
from common.records.attachments.upload import receive_upload
from common.records.schemas import AttachmentPublic
from common.records.views import attachment_public
from common.security import CurrentUser

router = APIRouter(
    prefix="/api/v1", tags=["attachments"], responses=error_responses(Unauthorized, NotFound, ServiceUnavailable)
)

DeviceId = Annotated[str | None, Header(alias="X-Device-ID", max_length=64, description="the sending device")]
# Uploads per user: plenty for a person, a brake on a runaway script.
UPLOAD_RATE = "120/minute"
INLINE_TYPES = IMAGE_TYPES | AUDIO_TYPES | {PDF_TYPE}
THUMBNAIL_TYPE = "image/jpeg"

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


def content_disposition(disposition: str, filename: str | None) -> str:
    """`inline` or `attachment`, with the name as an ASCII fallback and RFC 5987 UTF-8."""
    if not filename:
        return disposition
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in filename)
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.post(
    "/records/{record_id}/attachments",
    status_code=status.HTTP_201_CREATED,
    response_model=AttachmentPublic,
    openapi_extra=_UPLOAD_BODY,
    responses=error_responses(BadRequest, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable, RateLimited),
)
async def upload_attachment(
    record_id: str,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    device: DeviceId = None,
) -> AttachmentPublic:
    """Attach a file to one of your records: multipart/form-data, the file in the field
    `file`, at most `JILU_MAX_UPLOAD_MB`. The type is read from the bytes, whatever the file
    is called: images (JPEG, PNG, WebP, GIF, HEIC), audio (M4A, MP3, WAV, Ogg, WebM), PDF and
    UTF-8 text; anything else is refused with 415. Images get a thumbnail. The record moves
    to a new version, as with any edit."""
    await request.app.state.rate_limiter.check(UPLOAD_RATE, "upload", user.id)
    await service.ensure_record(request.app.state.sessionmaker, user.id, record_id)
    storage = AttachmentStorage(settings.data_dir)
    staged = await receive_upload(request, storage, settings.max_upload_mb * 1024 * 1024)
    try:
        await service.add_thumbnail(storage, staged)
        attachment = await service.attach(session, redis, storage, user.id, record_id, staged, device_id=device)
    finally:
        staged.discard()
    return attachment_public(attachment)


@router.get(
    "/attachments/{attachment_id}",
    response_class=FileResponse,
    responses={200: {"description": "the file, or its JPEG thumbnail", "content": {"application/octet-stream": {}}}},
)
async def download_attachment(
    attachment_id: str,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    thumb: Annotated[bool, Query(description="the JPEG thumbnail instead (404 when there is none)")] = False,
) -> FileResponse:
    """One of your attachments, as uploaded (ranges supported), or with `?thumb=1` its
    thumbnail. Images, audio and PDF are sent `inline`, anything else as a download."""
    storage = AttachmentStorage(settings.data_dir)
    attachment, path = await service.file_to_send(session, storage, user.id, attachment_id, thumbnail=thumb)
    media_type = THUMBNAIL_TYPE if thumb else attachment.content_type
    disposition = "inline" if media_type in INLINE_TYPES else "attachment"
    headers = {
        "Content-Disposition": content_disposition(disposition, None if thumb else attachment.filename),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private",
    }
    return FileResponse(path, media_type=media_type, headers=headers)


@router.delete("/attachments/{attachment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_attachment(
    attachment_id: str,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    background: BackgroundTasks,
    device: DeviceId = None,
) -> Response:
    """Take an attachment off its record (a new version of the record). Its file is deleted
    once no other attachment of yours has the same content."""
    sha256 = await service.remove(session, redis, user.id, attachment_id, device_id=device)
    # Runs after the commit: a file is only deleted once its last row is gone for good.
    storage = AttachmentStorage(settings.data_dir)
    background.add_task(service.collect_unreferenced, request.app.state.write_sessionmaker, storage, user.id, [sha256])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/records/{record_id}/purge", status_code=status.HTTP_204_NO_CONTENT, tags=["records"])
async def purge_record(
    record_id: str,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    background: BackgroundTasks,
) -> Response:
    """Delete a record of yours for good, now rather than after `JILU_TRASH_DAYS`: only a
    record already deleted (404 otherwise). Its content and attachments are gone; it stays in
    the sync feed as a tombstone. Purging it again changes nothing."""
    shas = await purge.purge_owned(session, redis, user.id, record_id)
    if shas:
        storage = AttachmentStorage(settings.data_dir)
        background.add_task(service.collect_unreferenced, request.app.state.write_sessionmaker, storage, user.id, shas)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
