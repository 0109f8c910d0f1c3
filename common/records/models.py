"""Records, their tags and attachments, and the per-user change sequence of the sync feed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from common.database.base import Base, TimestampMixin, UTCDateTime


class Extractable:
    """What Jilu read out of an attachment (OCR, a transcript, a PDF's text) or from behind a
    link record's URL (`common.records.extraction`). `status` is null where there is
    nothing to read (a record that is not a link). The texts are deferred: a record's read
    never loads them; search indexes `extracted_index` (segmented once, by the worker)."""

    extraction_status: Mapped[str | None] = mapped_column(String(16), default=None)
    extraction_engine: Mapped[str | None] = mapped_column(String(64), default=None)
    extraction_error: Mapped[str | None] = mapped_column(String(200), default=None)
    # What the engine learned besides the text: page_count, duration_seconds, confidence,
    # title, site_name, final_url, url (a link's), preview_attachment_id.
    extraction_details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    extracted_text: Mapped[str] = mapped_column(Text, default="", deferred=True)
    extracted_index: Mapped[str] = mapped_column(Text, default="", deferred=True)
    # When the current extraction was asked for: a pending one that long queued with no
    # worker taking it lost its job (Redis restarted empty) and is queued again.
    extraction_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class Record(TimestampMixin, Extractable, Base):
    __tablename__ = "records"
    __table_args__ = (
        Index("ix_records_owner_occurred", "owner_id", "occurred_at", "id"),
        Index("ix_records_owner_seq", "owner_id", "change_seq"),
    )

    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="note")
    title: Mapped[str | None] = mapped_column(String(200), default=None)
    content: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    device_id: Mapped[str | None] = mapped_column(String(64), default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Position in the owner's change feed; every create, edit and delete takes the next one.
    change_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Set when the content is gone for good; the row stays as the sync feed's tombstone.
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    share_slug: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    ai_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    ai_status: Mapped[str] = mapped_column(String(16), default="pending")
    ai_title: Mapped[str | None] = mapped_column(String(200), default=None)
    ai_summary: Mapped[str | None] = mapped_column(Text, default=None)
    ai_tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    ai_error: Mapped[str | None] = mapped_column(String(200), default=None)
    # Fingerprint of the sync push that made the current version, so a retried push is
    # recognised as already applied.
    push_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)

    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="record", order_by="Attachment.id", lazy="selectin", cascade="all, delete-orphan"
    )


class RecordTag(Base):
    """One row per tag of a live record: what tag filters and counts read."""

    __tablename__ = "record_tags"
    __table_args__ = (Index("ix_record_tags_owner_name", "owner_id", "name"),)

    record_id: Mapped[str] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(32))


class Attachment(Extractable, Base):
    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_owner_sha", "owner_id", "sha256"),)

    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str | None] = mapped_column(String(255), default=None)
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    # Files are stored once per owner and content: uploads/<owner>/<sha256[:2]>/<sha256>.
    sha256: Mapped[str] = mapped_column(String(64))
    has_thumbnail: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    record: Mapped[Record] = relationship(back_populates="attachments")


class SyncCounter(Base):
    """The last change sequence number handed out per user (row-locked while a write runs)."""

    __tablename__ = "sync_counters"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the owner's user id
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
