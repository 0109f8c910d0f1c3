"""Records on the wire (SPEC §4 "Shapes the clients rely on")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from common.records.storable import unstorable
from common.records.tags import MAX_TAGS, normalise_tags

Kind = Literal["note", "diary", "todo", "photo", "screenshot", "voice", "link"]
AiStatus = Literal["pending", "running", "done", "failed", "skipped"]
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
    occurred_at: AwareDatetime | None = None
    ai_opt_out: bool = False


class RecordCreate(RecordBase):
    """A new record; `id` may be made on the device (then a repeated create is idempotent)."""

    model_config = ConfigDict(extra="forbid")

    id: ClientId | None = None


class RecordUpdate(_Storable):
    """Fields to change; `version` (or the If-Match header) names the version edited."""

    model_config = ConfigDict(extra="forbid")

    version: Annotated[int, Field(ge=1)] | None = None
    kind: Kind | None = None
    title: Title | None = None
    content: Content | None = None
    tags: TagList | None = None
    occurred_at: AwareDatetime | None = None
    ai_opt_out: bool | None = None


class AttachmentPublic(BaseModel):
    id: str
    content_type: str
    size: int
    sha256: str
    filename: str | None
    url: str
    thumbnail_url: str | None


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


class SyncPushItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: ClientId
    op: Literal["upsert", "delete"]
    base_version: Annotated[int, Field(ge=0)] = 0
    data: dict[str, Any] | None = None


class SyncPush(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    items: Annotated[list[SyncPushItem], Field(min_length=1, max_length=500)]


class SyncResult(BaseModel):
    id: str
    status: Literal["applied", "conflict", "rejected"]
    record: RecordPublic | Tombstone | None = None
    error: str | None = None


class SyncPushResult(BaseModel):
    results: list[SyncResult]


class ImportReport(BaseModel):
    records: int
    attachments: int
    renamed: int = Field(description="records given a new id because theirs was taken")
    skipped: int
