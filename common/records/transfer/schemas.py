"""What an export's `records.json` holds, as import reads it back."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from common.records.attachments.service import MAX_ATTACHMENTS_PER_RECORD
from common.records.schemas import ClientId, Content, Kind, TagList, Title
from common.records.storable import unstorable

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ArchivedAttachment(BaseModel):
    """An attachment as listed in `records.json`; its bytes are `attachments/<sha256>`. The
    type and size are decided again from the bytes, never taken from the listing."""

    # The export also lists the attachment's server id and urls: ignored, never taken.
    model_config = ConfigDict(extra="ignore")

    sha256: Sha256
    filename: Annotated[str, Field(max_length=255)] | None = None


class ArchivedRecord(BaseModel):
    """A record as `records.json` carries it (the RecordPublic shape)."""

    # The export carries server-owned fields too (version, shared, ai): an import ignores
    # them, so a crafted archive cannot set them.
    model_config = ConfigDict(extra="ignore")

    id: ClientId
    kind: Kind = "note"
    title: Title | None = None
    content: Content = ""
    tags: TagList = []
    occurred_at: AwareDatetime
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None
    ai_opt_out: bool = False
    attachments: Annotated[list[ArchivedAttachment], Field(max_length=MAX_ATTACHMENTS_PER_RECORD)] = []

    @model_validator(mode="after")
    def _storable(self) -> ArchivedRecord:
        problem = unstorable(self)
        if problem:
            raise ValueError(problem)
        return self


archived_records = TypeAdapter(list[ArchivedRecord])
