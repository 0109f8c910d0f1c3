"""`/api/v1/attachments/{id}/extraction` and `/api/v1/records/{id}/extraction`: what Jilu
read out of a file or from behind a link, and asking to read it again. Served by
mobile_service and web_service; the reading itself is done by llm_service's workers."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy.orm import undefer

from common.deps import CurrentUser, RateLimiterDep, RedisDep, SessionDep
from common.errors import Conflict, NotFound, RateLimited, ServiceUnavailable, Unauthorized, error_responses
from common.records import extraction
from common.records.models import Attachment, Record
from common.records.repository import AttachmentRepository, RecordRepository
from common.records.schemas import ExtractionInfo, ExtractionText
from common.records.views import extraction_info
from common.records.writer import RecordWriter

router = APIRouter(
    prefix="/api/v1", tags=["extraction"], responses=error_responses(Unauthorized, NotFound, ServiceUnavailable)
)

# Asking again is for a failed or improved reading, not a loop: a brake per user.
EXTRACT_RATE = "30/minute"
NOT_A_LINK = "only a link record is read from its URL; a file is read through its attachment"
NOT_READABLE = "Jilu reads no text from this kind of file"
STILL_RUNNING = "it is being read right now; ask again once it is done"


def _with_text(target: Attachment | Record) -> ExtractionText:
    info = extraction_info(target)
    if info is None:
        raise NotFound(NOT_A_LINK)
    return ExtractionText(**dict(info), text=target.extracted_text)


def _queued(target: Attachment | Record) -> ExtractionInfo:
    """The answer to asking again: the extraction as it now is, `pending`."""
    info = extraction_info(target)
    assert info is not None, "asked again of something with nothing to read"
    return info


# Reading the text loads it (a deferred column); asking again locks the row and loads no text.
async def _attachment(session: SessionDep, owner_id: str, attachment_id: str, *, for_update: bool) -> Attachment:
    repository = AttachmentRepository(session, owner_id)
    statement = repository.of_live_records()
    if not for_update:
        statement = statement.options(undefer(Attachment.extracted_text))
    found = await repository.get_or_404(attachment_id, for_update=for_update, within=statement)
    return found


async def _link_record(session: SessionDep, owner_id: str, record_id: str, *, for_update: bool) -> Record:
    repository = RecordRepository(session, owner_id)
    statement = repository.statement()
    if not for_update:
        statement = statement.options(undefer(Record.extracted_text))
    found = await repository.get_or_404(record_id, for_update=for_update, within=statement)
    if found.kind != "link":
        raise NotFound(NOT_A_LINK)
    return found


@router.get("/attachments/{attachment_id}/extraction", response_model=ExtractionText)
async def read_attachment_extraction(attachment_id: str, user: CurrentUser, session: SessionDep) -> ExtractionText:
    """What was read out of one of your attachments: its state and the text (OCR of an image,
    a voice memo's transcript, a PDF's or text file's text)."""
    return _with_text(await _attachment(session, user.id, attachment_id, for_update=False))


@router.post(
    "/attachments/{attachment_id}/extract",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExtractionInfo,
    responses=error_responses(Conflict, RateLimited),
)
async def extract_attachment(
    attachment_id: str, user: CurrentUser, session: SessionDep, redis: RedisDep, limiter: RateLimiterDep
) -> ExtractionInfo:
    """Read one of your attachments again (after a failure, or with the provider you set up
    since): it goes back to `pending` and is queued. 409 while it is being read, and for a
    kind of file Jilu reads nothing from."""
    await limiter.check(EXTRACT_RATE, "extract", user.id)
    attachment = await _attachment(session, user.id, attachment_id, for_update=True)
    if not extraction.readable(attachment.content_type):
        raise Conflict(NOT_READABLE)
    if attachment.extraction_status == "running":
        raise Conflict(STILL_RUNNING)
    await extraction.request_extraction(redis, attachment)
    await session.flush()
    return _queued(attachment)


@router.get("/records/{record_id}/extraction", response_model=ExtractionText)
async def read_link_extraction(record_id: str, user: CurrentUser, session: SessionDep) -> ExtractionText:
    """What was read from behind one of your link records' URL: its state, the page's title
    and site, and its readable text. 404 for a record that is not a link."""
    return _with_text(await _link_record(session, user.id, record_id, for_update=False))


@router.post(
    "/records/{record_id}/extract",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExtractionInfo,
    responses=error_responses(Conflict, RateLimited),
)
async def extract_link(
    record_id: str, user: CurrentUser, session: SessionDep, redis: RedisDep, limiter: RateLimiterDep
) -> ExtractionInfo:
    """Read one of your link records' page again (it may have changed, or failed before).
    404 for a record that is not a link; 409 while it is being read or when it names no URL."""
    await limiter.check(EXTRACT_RATE, "extract", user.id)
    record = await _link_record(session, user.id, record_id, for_update=True)
    if record.extraction_status == "running":
        raise Conflict(STILL_RUNNING)
    if extraction.link_url(record) is None:
        raise Conflict(extraction.NO_LINK)
    await RecordWriter(session, redis).read_link_again(record)
    return _queued(record)
