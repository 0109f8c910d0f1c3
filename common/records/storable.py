"""Values that pass a record schema but that a database cannot store.

PostgreSQL refuses NUL characters in text, and a date in year 1 with a positive offset has
no UTC equivalent; either would fail only at the flush, as a 500. Checked before a write.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel


def _problem(value: Any) -> str | None:
    if isinstance(value, str) and "\x00" in value:
        return "must not contain NUL characters"
    if isinstance(value, list):
        return next((p for p in map(_problem, value) if p), None)
    if isinstance(value, datetime):
        try:
            value.astimezone(UTC)
        except OverflowError:
            return "is out of range"
    return None


def unstorable(values: BaseModel) -> str | None:
    """`field: problem` for the first field of `values` a database cannot store, else None."""
    for field in type(values).model_fields:
        problem = _problem(getattr(values, field))
        if problem:
            return f"{field} {problem}"
    return None
