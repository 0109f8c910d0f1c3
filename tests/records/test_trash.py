"""The trash: `GET /api/v1/trash` lists the caller's deleted records not yet purged, most
recently deleted first, in cursor pages; `POST /api/v1/records/{id}/restore` brings one back
through the record domain's write path (new version, new change number, search index, tags,
an `updated` event). Anything not in the caller's trash is 404.

On both ports (`records_api`), SQLite and PostgreSQL, the real test Redis.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import update

from common.records.models import Record
from tests.records.attachment_support import image_bytes
from tests.records.conftest import RECORDS, Account, RecordsStack
from tests.records.test_records_lists import cursor_of
from tests.support import assert_error

TRASH = "/api/v1/trash"
PNG = image_bytes("PNG", (32, 24))


async def trash_page(client: httpx.AsyncClient, account: Account, **params: Any) -> dict[str, Any]:
    response = await client.get(TRASH, params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def trashed_ids(client: httpx.AsyncClient, account: Account) -> list[str]:
    return [item["id"] for item in (await trash_page(client, account, limit=200))["items"]]


async def restore(client: httpx.AsyncClient, account: Account, record_id: str) -> httpx.Response:
    return await client.post(f"{RECORDS}/{record_id}/restore", headers=account.headers)


async def delete(client: httpx.AsyncClient, account: Account, record_id: str) -> None:
    assert (await client.delete(f"{RECORDS}/{record_id}", headers=account.headers)).status_code == 204


async def feed(client: httpx.AsyncClient, account: Account, since: int = 0) -> dict[str, Any]:
    response = await client.get("/api/v1/sync/changes", params={"since": since}, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def listed(client: httpx.AsyncClient, account: Account, **params: Any) -> list[str]:
    response = await client.get(RECORDS, params={"limit": 200, **params}, headers=account.headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def found(client: httpx.AsyncClient, account: Account, q: str) -> list[str]:
    response = await client.get("/api/v1/search", params={"q": q}, headers=account.headers)
    assert response.status_code == 200, response.text
    return [hit["record"]["id"] for hit in response.json()["items"]]


# -- delete, the trash, restore ---------------------------------------------------------------


async def test_a_deleted_record_is_in_the_trash_and_a_restore_brings_it_back_everywhere(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    api, owner = records_api, records_owner
    record = await records_stack.create(
        api, owner, title="体检报告", content="今天下午开会讨论预算 quixotic", tags=["health"]
    )
    await delete(api, owner, record["id"])
    deleted_row = await records_stack.record_row(record["id"])
    since = (await feed(api, owner))["cursor"]

    # In the trash, as it was, with when it was deleted; gone from everything else.
    page = await trash_page(api, owner)
    assert page["next_cursor"] is None
    (item,) = page["items"]
    assert {k: v for k, v in item.items() if k not in ("deleted_at", "version", "updated_at")} == {
        k: v for k, v in record.items() if k not in ("version", "updated_at")
    }
    assert item["version"] == 2
    assert deleted_row.deleted_at is not None
    assert datetime.fromisoformat(item["deleted_at"]) == deleted_row.deleted_at
    assert await listed(api, owner) == [] and await found(api, owner, "quixotic") == []
    assert (await api.get("/api/v1/tags", headers=owner.headers)).json() == []

    response = await restore(api, owner, record["id"])

    assert response.status_code == 200, response.text
    restored = response.json()
    assert restored["version"] == 3 and response.headers["etag"] == '"3"'
    assert "deleted_at" not in restored
    assert {k: v for k, v in restored.items() if k not in ("version", "updated_at")} == {
        k: v for k, v in record.items() if k not in ("version", "updated_at")
    }
    assert (await api.get(f"{RECORDS}/{record['id']}", headers=owner.headers)).json() == restored
    assert await listed(api, owner) == [record["id"]]
    assert await listed(api, owner, tag="health") == [record["id"]]
    assert await found(api, owner, "quixotic") == [record["id"]]
    assert await found(api, owner, "体检") == [record["id"]]
    assert (await api.get("/api/v1/tags", headers=owner.headers)).json() == [{"name": "health", "count": 1}]
    assert await trashed_ids(api, owner) == []
    # The sync feed brings it back as a live record at a new change number.
    changes = await feed(api, owner, since=since)
    assert changes["changes"] == [restored] and changes["cursor"] > since
    row = await records_stack.record_row(record["id"])
    assert (row.is_deleted, row.deleted_at, row.purged_at, row.version) == (False, None, None, 3)
    assert row.change_seq == changes["cursor"] > deleted_row.change_seq
    events = await records_stack.events()
    assert [(e["type"], e["version"]) for e in events] == [("created", "1"), ("deleted", "2"), ("updated", "3")]
    assert events[-1]["record_id"] == record["id"] and events[-1]["owner_id"] == owner.id

    # Restored once: it is no longer in the trash to restore again.
    assert_error(await restore(api, owner, record["id"]), 404, "not_found")
    assert len(await records_stack.events()) == 3


async def test_a_restored_record_keeps_its_attachments_but_not_its_share_link(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    api, owner = records_stack.mobile, records_owner
    record = await records_stack.create(api, owner, content="with a photo")
    files = {"file": ("photo.png", PNG, "image/png")}
    uploaded = await api.post(f"{RECORDS}/{record['id']}/attachments", files=files, headers=owner.headers)
    assert uploaded.status_code == 201, uploaded.text
    slug = (await api.post(f"{RECORDS}/{record['id']}/share", headers=owner.headers)).json()["slug"]
    await delete(api, owner, record["id"])
    (item,) = (await trash_page(api, owner))["items"]
    assert [a["id"] for a in item["attachments"]] == [uploaded.json()["id"]] and item["shared"] is False

    restored = (await restore(records_stack.web, owner, record["id"])).json()

    assert [a["id"] for a in restored["attachments"]] == [uploaded.json()["id"]]
    download = await api.get(uploaded.json()["url"], headers=owner.headers)
    assert download.status_code == 200 and download.content == PNG
    assert restored["shared"] is False
    assert_error(await api.get(f"/api/v1/public/{slug}"), 404, "not_found")


async def test_a_restore_takes_the_device_and_requeues_an_analysis_the_deletion_cut_short(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    api, owner = records_stack.mobile, records_owner
    record = await records_stack.create(api, owner, content="being analysed when deleted")
    async with records_stack.sessionmaker() as session:
        await session.execute(update(Record).where(Record.id == record["id"]).values(ai_status="running"))
        await session.commit()
    await delete(api, owner, record["id"])

    response = await api.post(f"{RECORDS}/{record['id']}/restore", headers={**owner.headers, "X-Device-ID": "tablet"})

    assert response.status_code == 200, response.text
    assert response.json()["ai"]["status"] == "pending"
    row = await records_stack.record_row(record["id"])
    assert row.device_id == "tablet"


async def test_a_retried_sync_delete_after_a_restore_is_a_conflict_not_applied(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    api, owner = records_stack.mobile, records_owner
    record = await records_stack.create(api, owner, content="deleted from the phone")
    batch = {"device_id": "phone", "items": [{"id": record["id"], "op": "delete", "base_version": 1}]}
    first = await api.post("/api/v1/sync/push", json=batch, headers=owner.headers)
    assert first.json()["results"][0]["status"] == "applied"
    assert (await restore(api, owner, record["id"])).status_code == 200

    retried = await api.post("/api/v1/sync/push", json=batch, headers=owner.headers)

    (result,) = retried.json()["results"]
    assert result["status"] == "conflict" and result["record"]["version"] == 3
    assert (await api.get(f"{RECORDS}/{record['id']}", headers=owner.headers)).status_code == 200


# -- what is not in the caller's trash ---------------------------------------------------------


async def test_only_a_record_in_the_callers_trash_can_be_restored(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account, records_stranger: Account
) -> None:
    api, owner, stranger = records_api, records_owner, records_stranger
    live = await records_stack.create(api, owner, content="still here")
    purged = await records_stack.create(api, owner, content="gone for good")
    trashed = await records_stack.create(api, owner, content="in the owner's trash")
    await delete(api, owner, purged["id"])
    assert (await api.post(f"{RECORDS}/{purged['id']}/purge", headers=owner.headers)).status_code == 204
    await delete(api, owner, trashed["id"])
    rows_before = {rid: await records_stack.record_row(rid) for rid in (live["id"], purged["id"], trashed["id"])}
    events_before = await records_stack.events()

    for account, record_id in [
        (owner, live["id"]),  # live: not in the trash
        (owner, purged["id"]),  # purged: only a tombstone is left
        (owner, str(uuid.uuid4())),  # unknown
        (owner, "not-a-uuid"),
        (stranger, trashed["id"]),  # someone else's trash
        (stranger, live["id"]),
    ]:
        assert_error(await restore(api, account, record_id), 404, "not_found")

    for record_id, before in rows_before.items():
        after = await records_stack.record_row(record_id)
        assert (after.version, after.change_seq, after.is_deleted) == (
            before.version,
            before.change_seq,
            before.is_deleted,
        )
    assert await records_stack.events() == events_before
    # The stranger's trash holds nothing of the owner's; the owner's holds the trashed record
    # only (not the purged one).
    assert await trashed_ids(api, stranger) == []
    assert await trashed_ids(api, owner) == [trashed["id"]]
    assert_error(await restore(api, owner, purged["id"]), 404, "not_found")


async def test_the_trash_and_restore_want_a_token(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record = await records_stack.create(records_api, records_owner)
    await delete(records_api, records_owner, record["id"])
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        code = "invalid_token" if headers else "unauthorized"
        assert_error(await records_api.get(TRASH, headers=headers), 401, code)
        assert_error(await records_api.post(f"{RECORDS}/{record['id']}/restore", headers=headers), 401, code)
    assert await trashed_ids(records_api, records_owner) == [record["id"]]


# -- pages -------------------------------------------------------------------------------------


async def test_the_trash_is_most_recently_deleted_first_in_stable_pages(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    api, owner = records_api, records_owner
    # Deletion order, not occurred_at, orders the trash.
    made = [(await records_stack.create(api, owner, occurred_at=f"2024-01-0{n}T00:00:00Z"))["id"] for n in range(1, 8)]
    deletion_order = [made[3], made[0], made[6], made[2], made[5], made[1]]
    for record_id in deletion_order:
        await delete(api, owner, record_id)
    newest_first = list(reversed(deletion_order))

    assert await trashed_ids(api, owner) == newest_first
    ids, cursor, pages = [], None, 0
    while True:
        page = await trash_page(api, owner, limit=4, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= 4
        ids += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids == newest_first and pages == 2
    times = [item["deleted_at"] for item in (await trash_page(api, owner))["items"]]
    assert times == sorted(times, reverse=True)

    # A restore between two pages does not shift what the next page holds.
    first = await trash_page(api, owner, limit=2)
    assert (await restore(api, owner, newest_first[0])).status_code == 200
    rest = await trash_page(api, owner, limit=200, cursor=first["next_cursor"])
    assert [item["id"] for item in first["items"] + rest["items"]] == newest_first
    assert await trashed_ids(api, owner) == newest_first[1:]
    assert await listed(api, owner) == [made[4], newest_first[0]]  # by occurred_at again


async def test_the_page_size_is_capped_and_bad_parameters_are_refused(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record = await records_stack.create(records_api, records_owner)
    await delete(records_api, records_owner, record["id"])
    headers = records_owner.headers
    assert (await records_api.get(TRASH, params={"limit": 200}, headers=headers)).status_code == 200
    for params in ({"limit": 201}, {"limit": 0}, {"limit": -1}, {"limit": "many"}, {"cursor": "x" * 201}):
        assert_error(await records_api.get(TRASH, params=params, headers=headers), 422, "validation_error")
    for cursor in (
        "garbage!",
        "bm90LWpzb24",  # "not-json"
        cursor_of(["2024-01-01T00:00:00", "naive-time"]),
        cursor_of(["2024-01-01T00:00:00Z"]),
        cursor_of([5, "id"]),
    ):
        response = await records_api.get(TRASH, params={"cursor": cursor}, headers=headers)
        assert_error(response, 422, "validation_error")
        assert response.json()["detail"][0]["field"] == "query.cursor"
