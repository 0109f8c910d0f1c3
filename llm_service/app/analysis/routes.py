"""`POST /api/v1/records/{id}/analyze` (forwarded here by web and mobile)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, status
from pydantic import BaseModel
from sqlalchemy import update

from common.errors import Conflict, NotFound, Unauthorized, error_responses
from common.records.crud import get_owned
from common.records.events import publish_record_event
from common.records.models import Record
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
    record = await get_owned(session, user.id, record_id, for_update=True)
    if record is None:
        raise NotFound("no such record")
    if record.ai_opt_out:
        raise Conflict("this record opted out of AI processing")
    await session.execute(update(Record).where(Record.id == record.id).values(ai_status="pending", ai_error=None))
    record.ai_status = "pending"
    await publish_record_event(redis, "updated", record)
    return AnalysisQueued(id=record.id, status="pending")
