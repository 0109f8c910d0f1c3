"""`/api/v1/export` and `/api/v1/import`: served by mobile_service and web_service."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from common.bodies import own_size_cap
from common.deps import CurrentUser, RedisDep, SessionDep, SettingsDep
from common.errors import Conflict, ServiceUnavailable, Unauthorized, error_responses
from common.records.attachments.storage import AttachmentStorage, discard
from common.records.schemas import ImportReport
from common.records.transfer import service
from common.records.transfer.archive import ImportLimits
from common.uploads import RECEIVE_ERRORS, file_body, receive_file

router = APIRouter(prefix="/api/v1", tags=["export"], responses=error_responses(Unauthorized, ServiceUnavailable))

CHUNK_SIZE = 64 * 1024


def _chunks(file: IO[bytes]) -> Iterator[bytes]:
    # A plain iterator: Starlette runs it in a worker thread, off the event loop.
    try:
        while chunk := file.read(CHUNK_SIZE):
            yield chunk
    finally:
        file.close()


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "the caller's records as a zip"}},
)
async def export_records(user: CurrentUser, session: SessionDep, settings: SettingsDep) -> StreamingResponse:
    """Download every record of the caller's as a zip: `records/<id>.md` (YAML front matter
    with id, kind, title, tags, dates and ai_opt_out, then the Markdown), `attachments/<sha256>`
    (the files) and `records.json` (the full records). `POST /api/v1/import` takes it back."""
    file, size = await service.export(session, user.id, AttachmentStorage(settings.data_dir))
    filename = f"jilu-export-{datetime.now(UTC).date().isoformat()}.zip"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Content-Length": str(size)}
    return StreamingResponse(_chunks(file), media_type="application/zip", headers=headers)


@router.post(
    "/import",
    response_model=ImportReport,
    responses=error_responses(Conflict, *RECEIVE_ERRORS),
    openapi_extra=file_body("a zip made by GET /api/v1/export, at most 10 × `JILU_MAX_UPLOAD_MB`"),
)
@own_size_cap  # streamed by receive_file (common.uploads), capped at 10 × JILU_MAX_UPLOAD_MB
async def import_records(
    request: Request, user: CurrentUser, session: SessionDep, redis: RedisDep, settings: SettingsDep
) -> ImportReport:
    """Restore an export (multipart field `file`, at most 10 × the upload cap) into the
    caller's account: records keep their ids where free and get new ones where taken
    (`renamed`); ids the caller already has are `skipped`, so importing twice adds nothing.
    A bad archive (not a zip, no records.json, unsafe paths, too large unpacked) changes nothing."""
    limits = ImportLimits.for_upload_cap(settings.max_upload_mb)
    storage = AttachmentStorage(settings.data_dir)
    temp = await anyio.to_thread.run_sync(storage.new_temp_path)
    received = await receive_file(request, temp, limits.archive_bytes)
    try:
        with await anyio.to_thread.run_sync(received.path.open, "rb") as archive:
            return await service.import_archive(session, redis, user.id, archive, storage, limits)
    finally:
        discard(received.path)
