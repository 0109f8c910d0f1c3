"""`POST /api/v1/records/{id}/analyze` (forwarded here by web and mobile)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, status
from pydantic import BaseModel

from common.errors import Conflict, NotFound, Unauthorized, error_responses
from common.records.repository import RecordRepository
from common.records.writer import RecordWriter
from llm_service.app.deps import CurrentUser, RedisDep, SessionDep

router = APIRouter(prefix="/api/v1/records", tags=["analysis"], responses=error_responses(Unauthorized))


class AnalysisQueued(BaseModel):
    id: str
    status: Literal["pending"]


@router.post(
    "/{record_id}/analyze",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AnalysisQueued,
    responses=error_responses(NotFound, Conflict),
)
async def analyze(record_id: str, user: CurrentUser, session: SessionDep, redis: RedisDep) -> AnalysisQueued:
    """Queue the record for analysis again (title, summary, tags). Records that opted out of
    AI are never analysed: 409."""
    record = await RecordRepository(session, user.id).get_or_404(record_id, for_update=True)
    if record.ai_opt_out:
        raise Conflict("this record opted out of AI processing")
    await RecordWriter(session, redis).request_analysis(record)
    return AnalysisQueued(id=record.id, status="pending")
