"""Digests on the wire."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.wire_types import IsoDate, StrictFlag

Period = Literal["day", "week"]
# Dates a digest may be asked for: wide enough for imported diaries, narrow enough that a
# week's end is still a date.
EARLIEST = dt.date(1900, 1, 1)
LATEST = dt.date(9998, 12, 31)


class DigestGenerate(BaseModel):
    """Which period to write: the day, or the Monday-to-Sunday week, that contains `date`
    in the caller's time zone (default: today there)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"period": "week"}]})

    period: Period
    date: IsoDate | None = Field(default=None, description="YYYY-MM-DD in the caller's time zone")

    @field_validator("date")
    @classmethod
    def _in_range(cls, value: dt.date | None) -> dt.date | None:
        if value is not None and not EARLIEST <= value <= LATEST:
            raise ValueError(f"must be between {EARLIEST} and {LATEST}")
        return value


class DigestUpdate(BaseModel):
    """The flags a reader sets; the ones left out stay as they are (none may be null)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"is_pinned": True}]})

    is_read: StrictFlag | None = None
    is_pinned: StrictFlag | None = None

    @field_validator("is_read", "is_pinned")
    @classmethod
    def _not_null(cls, value: bool | None) -> bool | None:
        if value is None:  # runs only for fields the client sent
            raise ValueError("cannot be null")
        return value


class DigestPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    period: Period
    period_start: dt.datetime = Field(description="the period's first instant (local midnight, in UTC)")
    period_end: dt.datetime = Field(description="the instant after the period (exclusive)")
    content: str = Field(description="Markdown")
    record_ids: list[str] = Field(description="the records the digest covers")
    provider: str
    is_read: bool
    is_pinned: bool
    created_at: dt.datetime
    updated_at: dt.datetime
