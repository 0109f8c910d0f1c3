"""Memories on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from common.wire_types import StrictFlag

MAX_CONTENT_CHARS = 500
# A fact the user writes down themselves counts for more than the extracted default (0.5).
DEFAULT_USER_IMPORTANCE = 0.7

Source = Literal["user", "record", "chat"]
MemoryContent = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CONTENT_CHARS)]
Importance = Annotated[float, Field(ge=0, le=1, description="0 (trivial) to 1 (essential)")]


def _storable(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class MemoryCreate(BaseModel):
    """A fact the user adds. `long_term: false` makes it expire after a few days."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"content": "Prefers tea to coffee", "importance": 0.6, "long_term": True}]},
    )

    content: MemoryContent
    importance: Importance = DEFAULT_USER_IMPORTANCE
    long_term: StrictFlag = True

    _content_storable = field_validator("content")(_storable)


class MemoryUpdate(BaseModel):
    """Fields to change; the ones left out stay as they are (none may be null)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"importance": 0.9}]})

    content: MemoryContent | None = None
    importance: Importance | None = None
    long_term: StrictFlag | None = None

    @field_validator("content", "importance", "long_term")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only for fields the client sent: an explicit null is a mistake, not "unchanged".
        if value is None:
            raise ValueError("cannot be null")
        if isinstance(value, str):
            _storable(value)
        return value


class MemoryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    content: str
    importance: float
    long_term: bool
    source: Source
    source_id: str | None = Field(description="the record or conversation it was found in")
    expires_at: datetime | None = Field(description="short-term memories only")
    reinforced_at: datetime | None = Field(description="when the fact was last stated again")
    created_at: datetime
    updated_at: datetime
