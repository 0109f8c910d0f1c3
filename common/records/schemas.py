"""Records on the wire: the shapes clients rely on (docs/api.md, docs/records.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, model_validator

from common.records.storable import unstorable
from common.records.tags import MAX_TAGS, normalise_tags
from common.wire_types import IsoAwareDatetime, StrictFlag

Kind = Literal["note", "diary", "todo", "photo", "screenshot", "voice", "link"]
# Why a pushed item was not applied: `conflict` results say `version_conflict` or `deleted`;
# `rejected` ones the rest (`invalid_item`: the item itself is malformed; `invalid_data`: its
# `data` fails the record's schema; `unusable_id`: no record of the caller's has that id;
# `unstorable`: the database refused it).
PushErrorCode = Literal["version_conflict", "deleted", "invalid_item", "invalid_data", "unusable_id", "unstorable"]
AiStatus = Literal["pending", "running", "done", "failed", "skipped"]
ExtractionStatus = Literal["pending", "running", "done", "failed", "skipped"]
MAX_CONTENT_CHARS = 200_000
Title = Annotated[str, Field(max_length=200)]
Content = Annotated[str, Field(max_length=MAX_CONTENT_CHARS)]


def _client_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise ValueError("must be a UUID (offline apps make UUIDv7 ids on the device)") from exc


TagList = Annotated[
    list[Annotated[str, Field(max_length=64)]], Field(max_length=MAX_TAGS), AfterValidator(normalise_tags)
]
ClientId = Annotated[str, Field(max_length=36), AfterValidator(_client_id)]


class _Storable(BaseModel):
    """Refuses, as a 422, values a schema admits but a database cannot store."""

    @model_validator(mode="after")
    def _storable(self) -> Self:
        problem = unstorable(self)
        if problem:
            raise ValueError(problem)
        return self


class RecordBase(_Storable):
    kind: Kind = "note"
    title: Title | None = None
    content: Content = ""
    tags: TagList = []
    occurred_at: IsoAwareDatetime | None = None
    ai_opt_out: StrictFlag = False


# Record fields only the server writes: sent in a body, they are refused as read-only
# (a 422 saying so, see `common.field_problems`) rather than as unknown.
SERVER_OWNED_FIELDS = frozenset(
    {"owner_id", "created_at", "updated_at", "deleted_at", "shared", "attachments", "ai", "deleted", "extraction"}
)


class RecordCreate(RecordBase):
    """A new record; `id` may be made on the device (then a repeated create is idempotent)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "diary",
                    "title": "Walk by the river",
                    "content": "Plum blossoms along the river today. 河边的梅花开了。",
                    "tags": ["walk", "spring"],
                    "occurred_at": "2026-03-14T17:30:00+08:00",
                }
            ]
        },
    )
    read_only_fields: ClassVar[frozenset[str]] = SERVER_OWNED_FIELDS | {"version"}

    id: ClientId | None = None


class RecordUpdate(_Storable):
    """Fields to change; `version` (or the If-Match header) names the version edited."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"version": 3, "content": "Plum blossoms along the river, and a heron.", "tags": ["walk"]}]
        },
    )
    read_only_fields: ClassVar[frozenset[str]] = SERVER_OWNED_FIELDS | {"id"}

    version: Annotated[int, Field(ge=1)] | None = None
    kind: Kind | None = None
    title: Title | None = None
    content: Content | None = None
    tags: TagList | None = None
    occurred_at: IsoAwareDatetime | None = None
    ai_opt_out: StrictFlag | None = None


class ExtractionInfo(BaseModel):
    """What Jilu read out of an attachment, or from behind a link record's URL: the text is
    searchable, and analysis and the assistant see it. `GET /attachments/{id}/extraction` (a
    link record's: `GET /records/{id}/extraction`) gives the text itself."""

    status: ExtractionStatus = Field(
        description="pending or running: queued or being read; done: read (the text may be empty); "
        "skipped: nothing Jilu can read there (`error` says why; not an error); failed: gave up after retries"
    )
    engine: str | None = Field(description="what read it: rapidocr, transcription:<model>, pypdf, trafilatura …")
    error: str | None = Field(description="why nothing was read (skipped) or why it failed; safe to show")
    page_count: int | None = Field(default=None, description="a PDF's pages")
    duration_seconds: float | None = Field(default=None, description="a voice memo's length, from the file's header")
    title: str | None = Field(default=None, description="a link's page title")
    site_name: str | None = Field(default=None, description="a link's site")


class ExtractionText(ExtractionInfo):
    """An extraction with the text it read."""

    text: str = Field(description="the text read, in reading order; empty until done")


class AttachmentPublic(BaseModel):
    id: str
    content_type: str
    size: int
    sha256: str
    filename: str | None
    url: str = Field(
        description="a signed, absolute URL of the file, fetched without an Authorization header "
        "until `expires` (JILU_ATTACHMENT_URL_SECONDS, at least); read the record again for a fresh one"
    )
    thumbnail_url: str | None = Field(description="the same for the JPEG thumbnail; null when there is none")
    extraction: ExtractionInfo | None = Field(
        default=None, description="what was read out of the file; null for files stored before Jilu read them"
    )


class AttachmentUploaded(AttachmentPublic):
    """The attachment just added, and the version its record moved to (also in `ETag`)."""

    record_version: int = Field(description="the record's new version: base your next edit on it")


class AiInfo(BaseModel):
    status: AiStatus
    title: str | None
    summary: str | None
    tags: list[str]
    error: str | None = Field(default=None, description="the error class when status is failed")


class RecordPublic(BaseModel):
    id: str
    kind: Kind
    title: str | None
    content: str
    tags: list[str]
    occurred_at: datetime
    created_at: datetime
    updated_at: datetime
    version: int
    ai_opt_out: bool
    shared: bool
    attachments: list[AttachmentPublic]
    ai: AiInfo
    extraction: ExtractionInfo | None = Field(
        default=None, description="a `link` record's page, read from its URL; null for other kinds"
    )


class TrashedRecord(RecordPublic):
    """A record in the trash: restorable until it is purged."""

    deleted_at: datetime = Field(description="when it was deleted; purged `JILU_TRASH_DAYS` later")


class Tombstone(BaseModel):
    id: str
    deleted: Literal[True] = True
    version: int
    updated_at: datetime


class TagCount(BaseModel):
    name: str
    count: int


class SearchHit(BaseModel):
    record: RecordPublic
    score: float
    highlight: str = Field(description="an HTML-escaped excerpt with the matches in <mark>")
    matched_in: Literal["record", "attachment", "link"] = Field(
        default="record",
        description="where `highlight` comes from: the record's own text, the text read out of one of "
        "its attachments (`attachment_id`), or the page behind its link",
    )
    attachment_id: str | None = Field(default=None, description="the attachment whose text matched")


class ShareLink(BaseModel):
    slug: str
    url: str


class PublicRecord(BaseModel):
    """What a share link shows to anyone: no ids, no owner, no AI fields."""

    kind: Kind
    title: str | None
    content: str
    tags: list[str]
    occurred_at: datetime
    updated_at: datetime


class SyncChanges(BaseModel):
    changes: list[RecordPublic | Tombstone]
    cursor: int = Field(description="pass as `since` next time")
    has_more: bool


class SyncCursorAheadError(BaseModel):
    """409 `cursor_ahead`: `since` is past the server's change sequence (it was restored from
    a backup); resync from `since=0` (docs/records.md, "Full resync")."""

    error: Literal["cursor_ahead"]
    detail: str
    cursor: int = Field(description="the server's current cursor, for the record; a resync starts from 0")


class SyncPushItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: ClientId
    op: Literal["upsert", "delete"]
    base_version: Annotated[int, Field(ge=0)] = 0
    data: dict[str, Any] | None = Field(
        default=None, description="for an upsert, the record's fields as in `POST /api/v1/records` (new) or PATCH"
    )


MAX_PUSH_ITEMS = 500

# Each item is validated on its own by the push (a malformed one is `rejected` on its own
# line, the others still apply), so the body takes any JSON value per item; its schema, and
# hence a generated client, still says the items are `SyncPushItem`s.
PushItemIn = Annotated[Any, PlainValidator(lambda item: item, json_schema_input_type=SyncPushItem)]


class SyncPush(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "device_id": "pixel-8",
                    "items": [
                        {
                            "id": "01937c2e-8a4b-7cc0-9a1e-5f0c3b2d4e6f",
                            "op": "upsert",
                            "base_version": 0,
                            "data": {"kind": "diary", "content": "written offline"},
                        },
                        {"id": "01937c2e-9b5c-7dd1-8b2f-6a1d4c3e5f70", "op": "delete", "base_version": 3},
                    ],
                }
            ]
        },
    )

    device_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    items: Annotated[
        list[PushItemIn],
        Field(max_length=MAX_PUSH_ITEMS, description=f"at most {MAX_PUSH_ITEMS}; an empty batch answers no results"),
    ]


class SyncResult(BaseModel):
    id: str | None = Field(description="the item's id; null when the item had no usable one (it is `rejected`)")
    status: Literal["applied", "conflict", "rejected"]
    record: RecordPublic | Tombstone | None = None
    code: PushErrorCode | None = Field(default=None, description="why an item was not applied, as a code")
    error: str | None = Field(default=None, description="why, in words, naming the field at fault")


class SyncPushResult(BaseModel):
    results: list[SyncResult]


class ImportReport(BaseModel):
    records: int
    attachments: int
    renamed: int = Field(description="records given a new id because theirs was taken")
    skipped: int
