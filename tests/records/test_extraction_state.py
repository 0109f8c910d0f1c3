"""Extraction as the record services see it (issue 12): which uploads and link records are
owed a reading, the job queued with the write, `extraction` on attachments and records, the
endpoints that show the text and ask again, and search over what was read — through
mobile_service in process on SQLite and PostgreSQL (when one answers) with the real test
Redis. The reading itself (llm_service's workers and engines) is tested in llm_service/tests;
here a finished reading is stored through the workers' own `store.finish`.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from common.database import Sessions
from common.deps import service_state
from common.records.extraction import EXTRACTION_STREAM, NO_LINK, NOTHING_TO_READ
from common.records.models import Attachment, Record
from llm_service.app.extraction import store
from llm_service.app.extraction.results import Extracted
from tests.records.attachment_support import ELF, PDF, RECORDS, Account, Stack, image_bytes, wav_bytes
from tests.support import assert_error


async def queued(stack: Stack) -> list[dict[str, str]]:
    entries: Any = await stack.redis.xrange(EXTRACTION_STREAM)
    return [fields for _id, fields in entries]


def sessions_of(stack: Stack) -> Sessions:
    return service_state(stack.app).sessions


async def read_as(stack: Stack, target: str, target_id: str, result: Extracted) -> None:
    """What a worker does with a finished reading: claim the target, store the result."""
    claimed = await store.claim(sessions_of(stack), stack.redis, target, target_id, reclaimed=False)  # type: ignore[arg-type]
    assert isinstance(claimed, store.Claimed), claimed
    assert await store.finish(sessions_of(stack), stack.redis, claimed, result)


async def test_a_readable_upload_is_owed_a_reading_and_queued(stack: Stack, owner: Account) -> None:
    record = await stack.record(owner)
    for data, filename in ((image_bytes("PNG"), "shot.png"), (wav_bytes(), "memo.wav"), (PDF, "paper.pdf")):
        uploaded = await stack.uploaded(owner, record["id"], data, filename)
        assert uploaded["extraction"] == {
            "status": "pending",
            "engine": None,
            "error": None,
            "page_count": None,
            "duration_seconds": None,
            "title": None,
            "site_name": None,
        }
    jobs = await queued(stack)
    assert [job["target"] for job in jobs] == ["attachment"] * 3
    assert {job["owner_id"] for job in jobs} == {owner.id}
    shown = (await stack.api.get(f"{RECORDS}/{record['id']}", headers=owner.headers)).json()
    assert [a["extraction"]["status"] for a in shown["attachments"]] == ["pending"] * 3


async def test_a_file_with_nothing_to_read_is_skipped_not_queued(stack: Stack, owner: Account) -> None:
    record = await stack.record(owner)
    response = await stack.upload(owner, record["id"], ELF, "tool", "application/octet-stream")
    if response.status_code == 415:  # binaries are refused outright: nothing is queued either
        assert await queued(stack) == []
        return
    assert response.json()["extraction"]["status"] == "skipped"
    assert response.json()["extraction"]["error"] == NOTHING_TO_READ
    assert await queued(stack) == []


async def test_a_finished_reading_is_searchable_and_shows_where_it_matched(stack: Stack, owner: Account) -> None:
    record = await stack.record(owner, content="截图")
    uploaded = await stack.uploaded(owner, record["id"], image_bytes("PNG"), "shot.png")
    before = (await stack.api.get(f"{RECORDS}/{record['id']}", headers=owner.headers)).json()
    text = "会议改到周五下午三点\nmeeting moved to Friday 3pm"
    await read_as(
        stack, "attachment", uploaded["id"], Extracted("done", "rapidocr", text, details={"confidence": 0.99})
    )

    after = (await stack.api.get(f"{RECORDS}/{record['id']}", headers=owner.headers)).json()
    assert after["attachments"][0]["extraction"]["status"] == "done"
    assert after["attachments"][0]["extraction"]["engine"] == "rapidocr"
    assert after["version"] == before["version"]  # no new version: a device's edit stays valid
    assert after["ai"]["status"] in ("pending", "skipped")  # analysis is owed the new text
    for query in ("周五", "Friday"):
        found = (await stack.api.get("/api/v1/search", params={"q": query}, headers=owner.headers)).json()
        assert [hit["record"]["id"] for hit in found["items"]] == [record["id"]], query
        hit = found["items"][0]
        assert hit["matched_in"] == "attachment"
        assert hit["attachment_id"] == uploaded["id"]
        assert f"<mark>{query}</mark>" in hit["highlight"]
    own = (await stack.api.get("/api/v1/search", params={"q": "截图"}, headers=owner.headers)).json()
    assert own["items"][0]["matched_in"] == "record" and own["items"][0]["attachment_id"] is None

    text_response = await stack.api.get(f"/api/v1/attachments/{uploaded['id']}/extraction", headers=owner.headers)
    assert text_response.status_code == 200
    assert text_response.json()["text"] == text
    assert text_response.json()["status"] == "done"
    # The change reaches synced devices: a new change number with the reading.
    changes = (await stack.api.get("/api/v1/sync/changes", params={"since": 0}, headers=owner.headers)).json()
    synced = next(item for item in changes["changes"] if item["id"] == record["id"])
    assert synced["attachments"][0]["extraction"]["status"] == "done"


async def test_an_edit_keeps_what_was_read_in_the_index(stack: Stack, owner: Account) -> None:
    record = await stack.record(owner, content="receipt")
    uploaded = await stack.uploaded(owner, record["id"], image_bytes("PNG"), "r.png")
    await read_as(stack, "attachment", uploaded["id"], Extracted("done", "rapidocr", "发票 invoice 2026"))
    current = (await stack.api.get(f"{RECORDS}/{record['id']}", headers=owner.headers)).json()
    edited = await stack.api.patch(
        f"{RECORDS}/{record['id']}",
        json={"content": "receipt, paid", "version": current["version"]},
        headers=owner.headers,
    )
    assert edited.status_code == 200, edited.text
    found = (await stack.api.get("/api/v1/search", params={"q": "发票"}, headers=owner.headers)).json()
    assert [hit["record"]["id"] for hit in found["items"]] == [record["id"]]


async def test_asking_again_queues_a_new_reading(stack: Stack, owner: Account) -> None:
    record = await stack.record(owner)
    uploaded = await stack.uploaded(owner, record["id"], image_bytes("PNG"), "shot.png")
    await read_as(stack, "attachment", uploaded["id"], Extracted("skipped", "rapidocr", reason="no text in the image"))
    await stack.redis.delete(EXTRACTION_STREAM)
    response = await stack.api.post(f"/api/v1/attachments/{uploaded['id']}/extract", headers=owner.headers)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending" and response.json()["error"] is None
    assert [job["id"] for job in await queued(stack)] == [uploaded["id"]]
    # While a worker reads it, asking again is a clear 409 that changes nothing.
    claimed = await store.claim(sessions_of(stack), stack.redis, "attachment", uploaded["id"], reclaimed=False)
    assert isinstance(claimed, store.Claimed)
    busy = await stack.api.post(f"/api/v1/attachments/{uploaded['id']}/extract", headers=owner.headers)
    assert_error(busy, 409, "conflict")
    assert len(await queued(stack)) == 1


async def test_another_users_attachment_is_404(stack: Stack, owner: Account, stranger: Account) -> None:
    record = await stack.record(owner)
    uploaded = await stack.uploaded(owner, record["id"], image_bytes("PNG"), "shot.png")
    await stack.redis.delete(EXTRACTION_STREAM)
    for method, path in (
        ("POST", f"/api/v1/attachments/{uploaded['id']}/extract"),
        ("GET", f"/api/v1/attachments/{uploaded['id']}/extraction"),
        ("POST", f"{RECORDS}/{record['id']}/extract"),
        ("GET", f"{RECORDS}/{record['id']}/extraction"),
        ("POST", "/api/v1/attachments/no-such-id/extract"),
    ):
        response = await stack.api.request(method, path, headers=stranger.headers)
        assert_error(response, 404, "not_found")
    assert await queued(stack) == []
    status = await stack.scalar(select(Attachment.extraction_status).where(Attachment.id == uploaded["id"]))
    assert status == "pending"


async def test_a_link_record_is_owed_a_reading_of_its_url(stack: Stack, owner: Account) -> None:
    created = await stack.api.post(
        RECORDS,
        json={
            "kind": "link",
            "content": "看看这个 https://example.org/post?id=1。",
            "occurred_at": "2026-12-01T10:00:00Z",
        },
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["extraction"]["status"] == "pending"
    assert [job["id"] for job in await queued(stack)] == [record["id"]]
    assert await stack.scalar(select(Record.extraction_details).where(Record.id == record["id"])) == {
        "url": "https://example.org/post?id=1"
    }
    # An edit that keeps the URL asks for nothing; one that changes it asks again.
    same = await stack.api.patch(
        f"{RECORDS}/{record['id']}",
        json={"title": "a post", "version": record["version"]},
        headers=owner.headers,
    )
    assert len(await queued(stack)) == 1
    moved = await stack.api.patch(
        f"{RECORDS}/{record['id']}",
        json={"content": "https://example.org/other", "version": same.json()["version"]},
        headers=owner.headers,
    )
    assert moved.json()["extraction"]["status"] == "pending"
    assert len(await queued(stack)) == 2

    page = Extracted("done", "trafilatura", "周五的会议纪要", details={"title": "会议", "site_name": "Example"})
    await read_as(stack, "record", record["id"], page)
    shown = (await stack.api.get(f"{RECORDS}/{record['id']}", headers=owner.headers)).json()
    assert shown["extraction"]["status"] == "done"
    assert shown["extraction"]["title"] == "会议" and shown["extraction"]["site_name"] == "Example"
    found = (await stack.api.get("/api/v1/search", params={"q": "纪要"}, headers=owner.headers)).json()
    assert found["items"][0]["matched_in"] == "link"
    text = (await stack.api.get(f"{RECORDS}/{record['id']}/extraction", headers=owner.headers)).json()
    assert text["text"] == "周五的会议纪要"
    listed = (await stack.api.get(RECORDS, headers=owner.headers)).json()
    assert listed["items"][0]["extraction"] == shown["extraction"]


@pytest.mark.parametrize("content", ["no link here", ""])
async def test_a_link_record_without_a_url_is_skipped(stack: Stack, owner: Account, content: str) -> None:
    created = await stack.api.post(
        RECORDS, json={"kind": "link", "content": content, "occurred_at": "2026-12-01T10:00:00Z"}, headers=owner.headers
    )
    assert created.json()["extraction"]["status"] == "skipped"
    assert created.json()["extraction"]["error"] == NO_LINK
    assert await queued(stack) == []
    again = await stack.api.post(f"{RECORDS}/{created.json()['id']}/extract", headers=owner.headers)
    assert_error(again, 409, "conflict")


async def test_a_note_shows_no_extraction_and_has_no_extraction_endpoint(stack: Stack, owner: Account) -> None:
    record = await stack.record(owner)
    assert record["extraction"] is None
    assert_error(await stack.api.get(f"{RECORDS}/{record['id']}/extraction", headers=owner.headers), 404, "not_found")
    assert_error(await stack.api.post(f"{RECORDS}/{record['id']}/extract", headers=owner.headers), 404, "not_found")
