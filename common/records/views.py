"""Turning rows into the shapes clients rely on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pydantic_core

from common.records.attachments.links import AttachmentLinks
from common.records.models import Attachment, Record
from common.records.schemas import (
    AiInfo,
    AttachmentPublic,
    ExtractionInfo,
    PublicRecord,
    RecordPublic,
    Tombstone,
    TrashedRecord,
)

API_PREFIX = "/api/v1"

# What a listed record shows, read as columns rather than ORM objects: the list maps rows
# straight to JSON (`record_page_json`), without identity-map work or a model per record
# (issue 11). The order is the order `record_page_json` unpacks them in.
LISTED_RECORD_COLUMNS = (
    Record.id,
    Record.kind,
    Record.title,
    Record.content,
    Record.tags,
    Record.occurred_at,
    Record.created_at,
    Record.updated_at,
    Record.version,
    Record.ai_opt_out,
    Record.share_slug,
    Record.ai_status,
    Record.ai_title,
    Record.ai_summary,
    Record.ai_tags,
    Record.ai_error,
    Record.extraction_status,
    Record.extraction_engine,
    Record.extraction_error,
    Record.extraction_details,
)
LISTED_ATTACHMENT_COLUMNS = (
    Attachment.id,
    Attachment.owner_id,
    Attachment.content_type,
    Attachment.size,
    Attachment.sha256,
    Attachment.filename,
    Attachment.has_thumbnail,
    Attachment.extraction_status,
    Attachment.extraction_engine,
    Attachment.extraction_error,
    Attachment.extraction_details,
)
LISTED_ID, LISTED_OCCURRED_AT = 0, 5  # positions in LISTED_RECORD_COLUMNS: what the list's cursor holds
# A listed record: its `LISTED_RECORD_COLUMNS` values and its attachments' `LISTED_ATTACHMENT_COLUMNS`.
ListedRecord = tuple[Sequence[Any], list[Sequence[Any]]]


def _attachment_urls(attachment_id: str, owner_id: str, links: AttachmentLinks | None) -> tuple[str, str]:
    """The file's and the thumbnail's URL: signed by `links`, else the bearer routes' paths."""
    if links is None:
        url = f"{API_PREFIX}/attachments/{attachment_id}"
        return url, f"{url}?thumb=1"
    return links.url(attachment_id, "original", owner_id), links.url(attachment_id, "thumb", owner_id)


# What of an extraction's details clients see (the rest, such as a link's URL, is Jilu's).
PUBLIC_DETAILS = ("page_count", "duration_seconds", "title", "site_name")


def extraction_dict(
    status: str | None, engine: str | None, error: str | None, details: dict[str, Any] | None
) -> dict[str, Any] | None:
    """`ExtractionInfo` of the extraction columns, as the dict its model dumps to."""
    if status is None:
        return None
    shown = details or {}
    return {"status": status, "engine": engine, "error": error, **{key: shown.get(key) for key in PUBLIC_DETAILS}}


def extraction_info(target: Attachment | Record) -> ExtractionInfo | None:
    """The extraction clients see of an attachment or a link record (None: nothing to read)."""
    shown = extraction_dict(
        target.extraction_status, target.extraction_engine, target.extraction_error, target.extraction_details
    )
    return None if shown is None else ExtractionInfo.model_validate(shown)


def attachment_public(attachment: Attachment, links: AttachmentLinks | None) -> AttachmentPublic:
    """The attachment with the signed, absolute URLs of `links` (the port answering the
    request: `common.records.attachments.links`); with None (outside a request, e.g. the
    export), the bearer routes' paths."""
    url, thumbnail_url = _attachment_urls(attachment.id, attachment.owner_id, links)
    return AttachmentPublic(
        id=attachment.id,
        content_type=attachment.content_type,
        size=attachment.size,
        sha256=attachment.sha256,
        filename=attachment.filename,
        url=url,
        thumbnail_url=thumbnail_url if attachment.has_thumbnail else None,
        extraction=extraction_info(attachment),
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
        extraction=extraction_info(record),
    )


def record_page_json(listed: Sequence[ListedRecord], links: AttachmentLinks | None, next_cursor: str | None) -> bytes:
    """`Page[RecordPublic]` of `listed` as JSON: the bytes FastAPI makes of `record_public`'s
    models (tests/records/test_list_view.py holds them equal), keys in the models' field
    order, without a model per record. The columns come from the database through the
    models' types, so they are what the models would validate."""
    items = []
    for row, attachments in listed:
        (
            record_id,
            kind,
            title,
            content,
            tags,
            occurred_at,
            created_at,
            updated_at,
            version,
            ai_opt_out,
            share_slug,
            ai_status,
            ai_title,
            ai_summary,
            ai_tags,
            ai_error,
            extraction_status,
            extraction_engine,
            extraction_error,
            extraction_details,
        ) = row
        shown = []
        for (
            attachment_id,
            owner_id,
            content_type,
            size,
            sha256,
            filename,
            has_thumbnail,
            *extraction,
        ) in attachments:
            url, thumbnail_url = _attachment_urls(attachment_id, owner_id, links)
            shown.append(
                {
                    "id": attachment_id,
                    "content_type": content_type,
                    "size": size,
                    "sha256": sha256,
                    "filename": filename,
                    "url": url,
                    "thumbnail_url": thumbnail_url if has_thumbnail else None,
                    "extraction": extraction_dict(*extraction),
                }
            )
        items.append(
            {
                "id": record_id,
                "kind": kind,
                "title": title,
                "content": content,
                "tags": list(tags or []),
                "occurred_at": occurred_at,
                "created_at": created_at,
                "updated_at": updated_at,
                "version": version,
                "ai_opt_out": ai_opt_out,
                "shared": share_slug is not None,
                "attachments": shown,
                "ai": {
                    "status": ai_status,
                    "title": ai_title,
                    "summary": ai_summary,
                    "tags": list(ai_tags or []),
                    "error": ai_error if ai_status == "failed" else None,
                },
                "extraction": extraction_dict(
                    extraction_status, extraction_engine, extraction_error, extraction_details
                ),
            }
        )
    return pydantic_core.to_json({"items": items, "next_cursor": next_cursor})


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
