"""Turning rows into the shapes clients rely on."""

from __future__ import annotations

from common.records.attachments.links import AttachmentLinks
from common.records.models import Attachment, Record
from common.records.schemas import AiInfo, AttachmentPublic, PublicRecord, RecordPublic, Tombstone, TrashedRecord

API_PREFIX = "/api/v1"


def attachment_public(attachment: Attachment, links: AttachmentLinks | None) -> AttachmentPublic:
    """The attachment with the signed, absolute URLs of `links` (the port answering the
    request: `common.records.attachments.links`); with None (outside a request, e.g. the
    export), the bearer routes' paths."""
    if links is None:
        url = f"{API_PREFIX}/attachments/{attachment.id}"
        thumbnail_url = f"{url}?thumb=1"
    else:
        url = links.url(attachment.id, "original", attachment.owner_id)
        thumbnail_url = links.url(attachment.id, "thumb", attachment.owner_id)
    return AttachmentPublic(
        id=attachment.id,
        content_type=attachment.content_type,
        size=attachment.size,
        sha256=attachment.sha256,
        filename=attachment.filename,
        url=url,
        thumbnail_url=thumbnail_url if attachment.has_thumbnail else None,
    )


def record_public(record: Record, links: AttachmentLinks | None) -> RecordPublic:
    """The record as clients see it; `links` makes its attachments' URLs (see `attachment_public`)."""
    return RecordPublic(
        id=record.id,
        kind=record.kind,  # type: ignore[arg-type]
        title=record.title,
        content=record.content,
        tags=list(record.tags or []),
        occurred_at=record.occurred_at,
        created_at=record.created_at,
        updated_at=record.updated_at,
        version=record.version,
        ai_opt_out=record.ai_opt_out,
        shared=record.share_slug is not None,
        attachments=[attachment_public(a, links) for a in record.attachments],
        ai=AiInfo(
            status=record.ai_status,  # type: ignore[arg-type]
            title=record.ai_title,
            summary=record.ai_summary,
            tags=list(record.ai_tags or []),
            error=record.ai_error if record.ai_status == "failed" else None,
        ),
    )


def trashed_record(record: Record, links: AttachmentLinks | None) -> TrashedRecord:
    """A record of the trash: the record as it was, and when it was deleted."""
    assert record.deleted_at is not None, "only a deleted record is in the trash"
    return TrashedRecord(**dict(record_public(record, links)), deleted_at=record.deleted_at)


def tombstone(record: Record) -> Tombstone:
    return Tombstone(id=record.id, version=record.version, updated_at=record.updated_at)


def change_view(record: Record, links: AttachmentLinks | None) -> RecordPublic | Tombstone:
    return tombstone(record) if record.is_deleted else record_public(record, links)


def public_view(record: Record) -> PublicRecord:
    return PublicRecord(
        kind=record.kind,  # type: ignore[arg-type]
        title=record.title,
        content=record.content,
        tags=list(record.tags or []),
        occurred_at=record.occurred_at,
        updated_at=record.updated_at,
    )
