"""The record list's fast path (`views.record_page_json` over `service.list_page`'s rows)
answers byte for byte what `record_public`'s models answer, and pages count records, not
the rows of their attachments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from common.pagination import Page
from common.records.attachments.links import AttachmentLinks
from common.records.models import Attachment, Record
from common.records.schemas import RecordPublic
from common.records.views import (
    LISTED_ATTACHMENT_COLUMNS,
    LISTED_ID,
    LISTED_OCCURRED_AT,
    LISTED_RECORD_COLUMNS,
    ListedRecord,
    record_page_json,
    record_public,
)
from tests.records.conftest import RECORDS, Account, RecordsStack

WHEN = datetime(2024, 3, 2, 11, 0, 0, 123456, tzinfo=UTC)
LINKS = AttachmentLinks("http://example.test:8001", "a secret of the instance", 3600)


def _record(n: int, **fields: Any) -> Record:
    values: dict[str, Any] = {
        "id": f"01937c2e-8a4b-7cc0-9a1e-5f0c3b2d4e{n:02d}",
        "owner_id": "owner-1",
        "kind": "diary",
        "title": "河边 walk",
        "content": '梅花开了 "quoted" \\ and a\nnewline',
        "tags": ["walk", "春天"],
        "occurred_at": WHEN - timedelta(days=n),
        "created_at": WHEN.replace(microsecond=0),
        "updated_at": WHEN + timedelta(seconds=n),
        "version": n + 1,
        "ai_opt_out": False,
        "share_slug": None,
        "ai_status": "pending",
        "ai_title": None,
        "ai_summary": None,
        "ai_tags": [],
        "ai_error": None,
        "attachments": [],
    }
    values.update(fields)
    return Record(**values)


def _attachment(record: Record, n: int, *, has_thumbnail: bool) -> Attachment:
    return Attachment(
        id=f"{record.id[:-2]}a{n}",
        owner_id=record.owner_id,
        record_id=record.id,
        filename=None if n else "photo.jpg",
        content_type="image/jpeg",
        size=123_456 + n,
        sha256=f"{n:064x}",
        has_thumbnail=has_thumbnail,
        created_at=WHEN,
    )


def _listed(record: Record) -> ListedRecord:
    """The row `service.list_page` reads for `record`."""
    row = tuple(getattr(record, column.key) for column in LISTED_RECORD_COLUMNS)
    attachments: list[Sequence[Any]] = [
        tuple(getattr(a, column.key) for column in LISTED_ATTACHMENT_COLUMNS) for a in record.attachments
    ]
    return row, attachments


def _records() -> list[Record]:
    with_files = _record(1, share_slug="a-slug", ai_status="done", ai_title="Walk", ai_summary="A walk.")
    with_files.attachments = [
        _attachment(with_files, 0, has_thumbnail=True),
        _attachment(with_files, 1, has_thumbnail=False),
    ]
    return [
        _record(0),
        with_files,
        _record(2, title=None, content="", tags=[], kind="todo", ai_opt_out=True, ai_status="skipped"),
        _record(3, ai_status="failed", ai_error="TimeoutError", ai_tags=["天气"]),
        _record(4, ai_status="done", ai_error="left over from a failed run"),  # shown only when failed
    ]


@pytest.mark.parametrize("links", [LINKS, None], ids=["signed", "bearer"])
@pytest.mark.parametrize("next_cursor", [None, "eyJhIjoxfQ"])
def test_the_fast_page_is_the_models_page_byte_for_byte(links: AttachmentLinks | None, next_cursor: str | None) -> None:
    records = _records()
    expected_page = Page[RecordPublic](items=[record_public(r, links) for r in records], next_cursor=next_cursor)
    # What FastAPI does with a `response_model=Page[RecordPublic]` answer: validate, dump JSON.
    adapter = TypeAdapter(Page[RecordPublic])
    expected = adapter.dump_json(adapter.validate_python(expected_page))
    assert record_page_json([_listed(r) for r in records], links, next_cursor) == expected


def test_the_cursor_positions_name_the_cursor_columns() -> None:
    assert LISTED_RECORD_COLUMNS[LISTED_ID] is Record.id
    assert LISTED_RECORD_COLUMNS[LISTED_OCCURRED_AT] is Record.occurred_at


async def test_pages_count_records_not_their_attachments(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    made = [
        (await records_stack.create(records_api, records_owner, occurred_at=f"2024-03-0{day}T12:00:00Z"))["id"]
        for day in (5, 4, 3)
    ]
    async with records_stack.sessionmaker() as session:  # rows only: a list reads no files
        for n, record_id in enumerate(made[:2]):
            for k in range(3):
                session.add(
                    Attachment(
                        owner_id=records_owner.id,
                        record_id=record_id,
                        filename=f"p{n}{k}.jpg",
                        content_type="image/jpeg",
                        size=10 + k,
                        sha256=f"{n}{k}".rjust(64, "0"),
                        has_thumbnail=bool(k % 2),
                        created_at=WHEN,
                    )
                )
        await session.commit()

    seen: list[tuple[str, list[str]]] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await records_api.get(RECORDS, params=params, headers=records_owner.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= 2
        for item in body["items"]:
            seen.append((item["id"], [a["filename"] for a in item["attachments"]]))
            # Each listed record is the record its own route answers (URLs aside: their
            # expiry may move to the next bucket between the two requests).
            single = (await records_api.get(f"{RECORDS}/{item['id']}", headers=records_owner.headers)).json()
            for shown in (single, item):
                for attachment in shown["attachments"]:
                    attachment["url"] = attachment["url"].partition("&expires=")[0]
                    attachment["thumbnail_url"] = (attachment["thumbnail_url"] or "").partition("&expires=")[0]
            assert single == item
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [
        (made[0], ["p00.jpg", "p01.jpg", "p02.jpg"]),
        (made[1], ["p10.jpg", "p11.jpg", "p12.jpg"]),
        (made[2], []),
    ]
