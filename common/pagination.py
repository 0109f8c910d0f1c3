"""Cursor pagination, newest first, stable under ties: ordered by (a time column, id)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import BindParameter, Integer, Select, and_, bindparam, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from common.errors import Unprocessable

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50

T = TypeVar("T")

PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"page size, at most {MAX_PAGE_SIZE}")]
PageCursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(moment: datetime, row_id: str) -> str:
    raw = json.dumps([moment.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        moment, row_id = json.loads(base64.urlsafe_b64decode(padded))
        when = datetime.fromisoformat(moment)
        if when.tzinfo is None:  # every cursor this server gives out carries its zone
            raise ValueError("a cursor time without a time zone")
        return when, str(row_id)
    except (ValueError, TypeError) as exc:
        raise Unprocessable("query.cursor", "not a cursor this server gave out") from exc


def _scope_digest(scope: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(scope.encode()).digest()[:12]).decode()


def encode_offset_cursor(offset: int, scope: str) -> str:
    """A cursor for a ranked list (search), where no column orders the rows: how many rows
    came before, and a digest of what the list was (`scope`: owner, query, filters), so the
    cursor answers only for that list. Opaque to clients; nothing of `scope` can be read back."""
    raw = json.dumps({"o": offset, "s": _scope_digest(scope)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_offset_cursor(cursor: str, scope: str, *, max_offset: int) -> int:
    """The offset in a cursor `encode_offset_cursor` made for `scope`; 422 on `query.cursor`
    for anything else (malformed, another list's, another user's)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded))
        offset, digest = body["o"], body["s"]
    except (ValueError, TypeError, KeyError) as exc:
        raise Unprocessable("query.cursor", "not a cursor this server gave out") from exc
    if type(offset) is not int or not 0 < offset <= max_offset or digest != _scope_digest(scope):
        raise Unprocessable("query.cursor", "not a cursor of this search (ask again without one)")
    return offset


def keyset_statement(
    statement: Select[Any],
    time_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[str],
    *,
    after_cursor: bool,
) -> Select[Any]:
    """`statement` newest first, after a cursor when `after_cursor`; the page size and the
    cursor are bound parameters (`keyset_params`), so a statement can be built once and run
    for every page."""
    if after_cursor:
        moment: BindParameter[datetime] = bindparam("cursor_time", type_=time_column.type)
        row_id: BindParameter[str] = bindparam("cursor_id")
        statement = statement.where(or_(time_column < moment, and_(time_column == moment, id_column < row_id)))
    return statement.order_by(time_column.desc(), id_column.desc()).limit(bindparam("page_rows", type_=Integer))


def keyset_params(*, limit: int, cursor: str | None) -> dict[str, Any]:
    """The values `keyset_statement`'s parameters take for a page of `limit` after `cursor`:
    one row more than `limit` is read (the extra row says a next page exists)."""
    if not cursor:
        return {"page_rows": limit + 1}
    moment, row_id = decode_cursor(cursor)
    return {"page_rows": limit + 1, "cursor_time": moment, "cursor_id": row_id}


def page_statement(
    statement: Select[Any],
    time_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[str],
    *,
    limit: int,
    cursor: str | None,
) -> Select[Any]:
    """`statement` after `cursor`, newest first, with one row more than `limit` (the extra
    row says a next page exists), values bound."""
    keyset = keyset_statement(statement, time_column, id_column, after_cursor=bool(cursor))
    return keyset.params(keyset_params(limit=limit, cursor=cursor))


async def paginate(
    session: AsyncSession,
    statement: Select[Any],
    time_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[str],
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[Any], str | None]:
    """One page of `statement`'s rows, newest first, and the cursor of the next page."""
    statement = page_statement(statement, time_column, id_column, limit=limit, cursor=cursor)
    rows = list((await session.execute(statement)).scalars())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(getattr(last, time_column.key), getattr(last, id_column.key))
