"""Sync: the change feed over the per-owner change sequence (tombstones, pages, isolation) and
a device's push (applied / conflict / rejected per item, savepoints, idempotent retries).

Real apps in process (user_service to log in, mobile_service for records) on one migrated
database (SQLite, and PostgreSQL when one answers) and the real test Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from common.records.sync.service import UNUSABLE_ID
from tests.records.conftest import RECORDS, Account, RecordsStack
from tests.support import assert_error

SYNC = "/api/v1/sync"
TOMBSTONE_FIELDS = {"id", "deleted", "version", "updated_at"}


def new_id() -> str:
    return str(uuid.uuid4())


async def push(
    client: httpx.AsyncClient, account: Account, items: list[dict[str, Any]], device: str | None = "phone"
) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"items": items}
    if device is not None:
        body["device_id"] = device
    response = await client.post(f"{SYNC}/push", json=body, headers=account.headers)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["id"] for r in results] == [item["id"] for item in items]
    return results


async def feed(client: httpx.AsyncClient, account: Account, since: int = 0, limit: int = 500) -> dict[str, Any]:
    response = await client.get(f"{SYNC}/changes", params={"since": since, "limit": limit}, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def feed_one_by_one(client: httpx.AsyncClient, account: Account, since: int) -> list[tuple[int, dict]]:
    """Every change after `since` with its sequence number (pages of one: the cursor is it)."""
    changes: list[tuple[int, dict]] = []
    while True:
        page = await feed(client, account, since=since, limit=1)
        if not page["changes"]:
            assert page == {"changes": [], "cursor": since, "has_more": False}
            return changes
        assert page["cursor"] > since
        since = page["cursor"]
        changes.append((since, page["changes"][0]))


async def record_of(client: httpx.AsyncClient, account: Account, record_id: str) -> httpx.Response:
    return await client.get(f"{RECORDS}/{record_id}", headers=account.headers)


def upsert(record_id: str, base_version: int, **data: Any) -> dict[str, Any]:
    return {"id": record_id, "op": "upsert", "base_version": base_version, "data": data}


def delete(record_id: str, base_version: int) -> dict[str, Any]:
    return {"id": record_id, "op": "delete", "base_version": base_version}


# -- the change feed ----------------------------------------------------------------------


async def test_the_feed_pages_by_sequence_with_cursor_and_has_more(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    api, owner = records_stack.mobile, records_owner
    made = [await records_stack.create(api, owner, content=f"note {i}") for i in range(5)]
    deleted = await api.delete(f"{RECORDS}/{made[1]['id']}", headers=owner.headers)
    assert deleted.status_code == 204
    edited = await api.patch(
        f"{RECORDS}/{made[3]['id']}", json={"content": "edited", "version": 1}, headers=owner.headers
    )
    assert edited.status_code == 200, edited.text

    first = await feed(api, owner, since=0, limit=2)
    second = await feed(api, owner, since=first["cursor"], limit=2)
    third = await feed(api, owner, since=second["cursor"], limit=2)
    after = await feed(api, owner, since=third["cursor"], limit=2)

    # Oldest change first: the untouched creates, then the delete, then the edit.
    assert [c["id"] for c in first["changes"]] == [made[0]["id"], made[2]["id"]]
    assert [c["id"] for c in second["changes"]] == [made[4]["id"], made[1]["id"]]
    assert [c["id"] for c in third["changes"]] == [made[3]["id"]]
    assert [first["has_more"], second["has_more"], third["has_more"]] == [True, True, False]
    assert first["cursor"] < second["cursor"] < third["cursor"]
    assert after == {"changes": [], "cursor": third["cursor"], "has_more": False}
    assert third["changes"][0]["content"] == "edited"
    assert third["changes"][0]["version"] == 2
    # The whole feed at once says the same.
    whole = await feed(api, owner)
    assert [c["id"] for c in whole["changes"]] == [c["id"] for p in (first, second, third) for c in p["changes"]]
    assert whole["cursor"] == third["cursor"] and whole["has_more"] is False


async def test_a_deleted_record_is_a_tombstone_in_the_feed(records_stack: RecordsStack, records_owner: Account) -> None:
    api, owner = records_stack.mobile, records_owner
    record = await records_stack.create(api, owner, title="secret title", content="secret content")
    before = await feed(api, owner)
    assert (await api.delete(f"{RECORDS}/{record['id']}", headers=owner.headers)).status_code == 204

    page = await feed(api, owner, since=before["cursor"])

    assert len(page["changes"]) == 1
    tombstone = page["changes"][0]
    assert set(tombstone) == TOMBSTONE_FIELDS
    assert tombstone["id"] == record["id"]
    assert tombstone["deleted"] is True
    assert tombstone["version"] == 2
    assert "secret" not in str(page)


async def test_the_feed_holds_nothing_of_another_user(
    records_stack: RecordsStack, records_owner: Account, records_stranger: Account
) -> None:
    api = records_stack.mobile
    mine = await records_stack.create(api, records_owner, content="owner's diary")
    gone = await records_stack.create(api, records_owner, content="owner's deleted note")
    assert (await api.delete(f"{RECORDS}/{gone['id']}", headers=records_owner.headers)).status_code == 204
    theirs = await records_stack.create(api, records_stranger, content="stranger's note")

    stranger_feed = await feed(api, records_stranger)
    owner_feed = await feed(api, records_owner)

    assert [c["id"] for c in stranger_feed["changes"]] == [theirs["id"]]
    assert "owner's" not in str(stranger_feed)
    assert {c["id"] for c in owner_feed["changes"]} == {mine["id"], gone["id"]}
    # Sequences are per owner: the stranger's first change is number 1.
    assert stranger_feed["cursor"] == 1


BAD_FEED_PARAMS: list[dict[str, Any]] = [
    {"limit": 0},
    {"limit": 1001},
    {"since": -1},
    {"since": 2**63},
    {"since": "yesterday"},
    {"limit": "all"},
]


async def test_feed_parameters_out_of_range_are_422(records_stack: RecordsStack, records_owner: Account) -> None:
    for params in BAD_FEED_PARAMS:
        response = await records_stack.mobile.get(f"{SYNC}/changes", params=params, headers=records_owner.headers)
        detail = assert_error(response, 422, "validation_error")
        # A malformed cursor is a validation error naming the parameter, like any other.
        assert [problem["field"] for problem in detail] == [f"query.{next(iter(params))}"], detail  # type: ignore[attr-defined]


async def test_a_cursor_ahead_of_the_server_is_409_with_the_current_cursor(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account, records_stranger: Account
) -> None:
    """A device that synced against a server later restored from an older backup holds a
    cursor the server never reached: it is told so, with the server's cursor, instead of
    getting empty pages while the changes numbered again below its cursor pass it by."""
    owner = records_owner
    # Nothing numbered yet: 0 is the only cursor there is.
    response = await records_api.get(f"{SYNC}/changes", params={"since": 1}, headers=owner.headers)
    assert response.status_code == 409, response.text
    assert response.json() == {"error": "cursor_ahead", "detail": response.json()["detail"], "cursor": 0}
    assert "since=0" in response.json()["detail"]
    assert (await feed(records_api, owner, since=0)) == {"changes": [], "cursor": 0, "has_more": False}

    made = [await records_stack.create(records_api, owner, content=f"note {n}") for n in range(3)]
    # The stranger's changes do not move the owner's sequence: cursors are per owner.
    for n in range(5):
        await records_stack.create(records_api, records_stranger, content=f"theirs {n}")
    head = (await feed(records_api, owner))["cursor"]
    assert head == 3

    at_head = await feed(records_api, owner, since=head)
    for since in (head + 1, head + 1000, 2**63 - 1):
        response = await records_api.get(f"{SYNC}/changes", params={"since": since}, headers=owner.headers)
        assert response.status_code == 409, (since, response.text)
        body = response.json()
        assert set(body) == {"error", "detail", "cursor"} and body["error"] == "cursor_ahead"
        assert body["cursor"] == head
        assert response.headers.get("x-request-id")

    # Up to date is not ahead; the resync the 409 asks for finds everything.
    assert at_head == {"changes": [], "cursor": head, "has_more": False}
    resynced = await feed(records_api, owner, since=0, limit=2)
    rest = await feed(records_api, owner, since=resynced["cursor"], limit=2)
    assert [c["id"] for c in resynced["changes"] + rest["changes"]] == [r["id"] for r in made]
    assert rest["has_more"] is False and rest["cursor"] == head


async def test_sync_needs_a_login(records_stack: RecordsStack) -> None:
    assert_error(await records_stack.mobile.get(f"{SYNC}/changes"), 401, "unauthorized")
    response = await records_stack.mobile.post(f"{SYNC}/push", json={"items": [delete(new_id(), 1)]})
    assert_error(response, 401, "unauthorized")


async def test_no_change_is_skipped_when_many_writes_run_at_once(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    api, owner = records_stack.mobile, records_owner
    existing = [await records_stack.create(api, owner, content=f"old {i}") for i in range(10)]
    start = (await feed(api, owner))["cursor"]

    edits = [
        api.patch(f"{RECORDS}/{r['id']}", json={"content": f"edited {i}", "version": 1}, headers=owner.headers)
        for i, r in enumerate(existing)
    ]
    creates = [api.post(RECORDS, json={"content": f"new {i}"}, headers=owner.headers) for i in range(10)]
    responses = await asyncio.gather(*edits, *creates)
    assert [r.status_code for r in responses] == [200] * 10 + [201] * 10, [r.text for r in responses]

    changes = await feed_one_by_one(api, owner, since=start)

    # Twenty changes, numbered one after the other: none skipped, none repeated.
    assert [seq for seq, _ in changes] == list(range(start + 1, start + 21))
    written = {r.json()["id"]: r.json()["version"] for r in responses}
    assert {change["id"]: change["version"] for _, change in changes} == written


# -- pushing ------------------------------------------------------------------------------


async def test_push_creates_with_base_version_zero_and_edits_at_the_current_version(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    api, owner = records_stack.mobile, records_owner
    record_id = new_id()

    created = await push(api, owner, [upsert(record_id, 0, content="written offline", tags=["Trip"], kind="diary")])
    edited = await push(api, owner, [upsert(record_id, 1, title="Day one")])

    assert created[0]["status"] == "applied"
    assert created[0]["record"]["version"] == 1
    assert created[0]["record"]["tags"] == ["trip"]
    assert edited[0]["status"] == "applied"
    assert edited[0]["record"]["version"] == 2
    stored = (await record_of(api, owner, record_id)).json()
    assert (stored["title"], stored["content"], stored["kind"], stored["version"]) == (
        "Day one",
        "written offline",
        "diary",
        2,
    )
    assert stored == edited[0]["record"]
    assert (await records_stack.record_row(record_id)).device_id == "phone"


async def test_two_devices_editing_the_same_version_one_applies_one_conflicts(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    api, owner = records_stack.mobile, records_owner
    record_id = new_id()
    await push(api, owner, [upsert(record_id, 0, content="shared start")], device="phone")

    phone, tablet = await asyncio.gather(
        push(api, owner, [upsert(record_id, 1, content="phone's edit")], device="phone"),
        push(api, owner, [upsert(record_id, 1, content="tablet's edit")], device="tablet"),
    )

    outcomes = {"phone": phone[0], "tablet": tablet[0]}
    assert sorted(r["status"] for r in outcomes.values()) == ["applied", "conflict"]
    winner = next(name for name, r in outcomes.items() if r["status"] == "applied")
    loser = "tablet" if winner == "phone" else "phone"
    stored = (await record_of(api, owner, record_id)).json()
    assert stored["content"] == f"{winner}'s edit"
    assert stored["version"] == 2
    # The loser is handed the server's record to merge with; its own edit was not applied.
    assert outcomes[loser]["record"] == stored
    assert outcomes[loser]["error"]
    assert (await records_stack.record_row(record_id)).device_id == winner

    # Nothing lost: the loser merges and pushes at the version it was given.
    merged = f"{winner}'s edit + {loser}'s edit"
    again = await push(api, owner, [upsert(record_id, stored["version"], content=merged)], device=loser)
    assert again[0]["status"] == "applied"
    assert (await record_of(api, owner, record_id)).json()["content"] == merged


async def test_a_retried_batch_is_applied_once(records_stack: RecordsStack, records_owner: Account) -> None:
    api, owner = records_stack.mobile, records_owner
    to_edit = await records_stack.create(api, owner, content="edit me")
    to_delete = await records_stack.create(api, owner, content="delete me")
    batch = [
        upsert(new := new_id(), 0, content="made offline", tags=["a", "b"]),
        upsert(to_edit["id"], 1, content="edited offline"),
        delete(to_delete["id"], 1),
        upsert(new, 1, title="then titled"),
    ]
    first = await push(api, owner, batch, device="phone")
    assert [r["status"] for r in first] == ["applied"] * 4
    cursor = (await feed(api, owner))["cursor"]
    events = len(await records_stack.events())

    retried = await push(api, owner, batch, device="phone")

    # The last item of the batch made the new record's current version, so its answer is
    # the record as it is now; every other answer is exactly what the first push said.
    assert [r["status"] for r in retried] == ["applied"] * 4
    assert retried[1:] == first[1:]
    assert retried[0]["record"] == first[3]["record"]
    assert (await feed(api, owner, since=cursor))["changes"] == []
    assert len(await records_stack.events()) == events
    assert (await record_of(api, owner, new)).json()["version"] == 2
    assert (await record_of(api, owner, to_edit["id"])).json()["version"] == 2
    assert (await records_stack.record_row(to_delete["id"])).version == 2


async def test_the_same_edit_from_another_device_is_a_conflict_not_a_retry(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    api, owner = records_stack.mobile, records_owner
    record = await records_stack.create(api, owner, content="start")
    item = upsert(record["id"], 1, content="edited")
    assert (await push(api, owner, [item], device="phone"))[0]["status"] == "applied"

    other = await push(api, owner, [item], device="tablet")

    assert other[0]["status"] == "conflict"
    assert other[0]["record"]["version"] == 2


async def test_rejected_items_change_nothing_and_do_not_block_the_rest(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    api, owner = records_stack.mobile, records_owner
    existing = await records_stack.create(api, owner, content="before")
    ok_new, long_title, extra_field, no_data, bad_kind = (new_id() for _ in range(5))
    batch = [
        upsert(ok_new, 0, content="fine"),
        upsert(long_title, 0, title="x" * 201),
        upsert(extra_field, 0, content="sneaky", owner_id=owner.id, is_deleted=True),
        {"id": no_data, "op": "upsert", "base_version": 0},
        upsert(bad_kind, 0, kind="spreadsheet"),
        upsert(existing["id"], 1, version=7),
        upsert(existing["id"], 1, ai_summary="forged"),
        upsert(new_id(), 3, content="an edit of nothing"),
        delete(new_id(), 1),
        upsert(existing["id"], 1, content="after"),
    ]
    count = await records_stack.record_count(owner.id)

    results = await push(api, owner, batch)

    assert [r["status"] for r in results] == ["applied"] + ["rejected"] * 8 + ["applied"]
    for result in results[1:-1]:
        assert result["error"] and result["record"] is None
    assert "title" in results[1]["error"]
    assert "owner_id" in results[2]["error"]
    assert "kind" in results[4]["error"]
    assert "ai_summary" in results[6]["error"]
    assert await records_stack.record_count(owner.id) == count + 1
    for rejected in (long_title, extra_field, no_data, bad_kind):
        assert (await record_of(api, owner, rejected)).status_code == 404
    stored = (await record_of(api, owner, existing["id"])).json()
    assert (stored["content"], stored["version"], stored["ai"]["summary"]) == ("after", 2, None)


async def test_values_no_database_can_store_are_rejected_not_a_500(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    api, owner = records_stack.mobile, records_owner
    existing = await records_stack.create(api, owner, content="before")
    batch = [
        upsert(new_id(), 0, content="nul \x00 inside"),
        upsert(new_id(), 0, content="year one", occurred_at="0001-01-01T00:30:00+01:00"),
        upsert(existing["id"], 1, tags=["ok", "n\x00l"]),
        upsert(existing["id"], 1, content="after"),
    ]

    results = await push(api, owner, batch)

    assert [r["status"] for r in results] == ["rejected", "rejected", "rejected", "applied"]
    assert "content" in results[0]["error"]
    assert "occurred_at" in results[1]["error"]
    assert "tags" in results[2]["error"]
    assert await records_stack.record_count(owner.id) == 1
    assert (await record_of(api, owner, existing["id"])).json()["tags"] == []


async def test_two_devices_creating_the_same_id_at_once(records_stack: RecordsStack, records_owner: Account) -> None:
    api, owner = records_stack.mobile, records_owner
    record_id = new_id()

    phone, tablet = await asyncio.gather(
        push(api, owner, [upsert(record_id, 0, content="phone's")], device="phone"),
        push(api, owner, [upsert(record_id, 0, content="tablet's")], device="tablet"),
    )

    assert sorted([phone[0]["status"], tablet[0]["status"]]) == ["applied", "conflict"]
    stored = (await record_of(api, owner, record_id)).json()
    winner, loser = (phone[0], tablet[0]) if phone[0]["status"] == "applied" else (tablet[0], phone[0])
    assert winner["record"] == stored
    assert loser["record"] == stored
    assert await records_stack.record_count(owner.id) == 1


async def test_another_users_id_is_rejected_without_revealing_it(
    records_stack: RecordsStack, records_owner: Account, records_stranger: Account
) -> None:
    api = records_stack.mobile
    theirs = await records_stack.create(api, records_stranger, title="private", content="the stranger's")
    unknown = new_id()

    results = await push(
        api,
        records_owner,
        [
            upsert(theirs["id"], 0, content="taken over"),
            upsert(theirs["id"], 1, content="overwritten"),
            delete(theirs["id"], 1),
            upsert(unknown, 1, content="overwritten"),
            delete(unknown, 1),
        ],
    )

    assert [r["status"] for r in results] == ["rejected"] * 5
    # The same words for someone else's id and for an id that names nothing at all.
    assert {r["error"] for r in results} == {UNUSABLE_ID}
    assert all(r["record"] is None for r in results)
    assert "private" not in str(results)
    row = await records_stack.record_row(theirs["id"])
    assert (row.owner_id, row.content, row.version, row.is_deleted) == (records_stranger.id, "the stranger's", 1, False)


async def test_delete_applies_once_and_a_stale_delete_or_edit_conflicts(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    api, owner = records_stack.mobile, records_owner
    record = await records_stack.create(api, owner, content="v1")
    moved_on = await records_stack.create(api, owner, content="v1")
    await api.patch(f"{RECORDS}/{moved_on['id']}", json={"content": "v2", "version": 1}, headers=owner.headers)

    results = await push(api, owner, [delete(record["id"], 1), delete(moved_on["id"], 1)], device="phone")
    again = await push(
        api, owner, [delete(record["id"], 1), upsert(record["id"], 2, content="revived")], device="tablet"
    )

    assert results[0]["status"] == "applied"
    assert results[0]["record"] == {**results[0]["record"], "id": record["id"], "deleted": True, "version": 2}
    assert set(results[0]["record"]) == TOMBSTONE_FIELDS
    # Deleting the version the device saw fails once someone edited it: the edit is kept.
    assert results[1]["status"] == "conflict"
    assert (results[1]["record"]["content"], results[1]["record"]["version"]) == ("v2", 2)
    assert (await record_of(api, owner, moved_on["id"])).status_code == 200
    # Deleting a deleted record is done already; editing one is a conflict with its tombstone.
    assert again[0] == {**results[0], "error": None}
    assert again[1]["status"] == "conflict"
    assert set(again[1]["record"]) == TOMBSTONE_FIELDS
    assert (await records_stack.record_row(record["id"])).version == 2


async def test_an_unchanged_upsert_applies_without_a_new_version(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    api, owner = records_stack.mobile, records_owner
    record = await records_stack.create(api, owner, content="same", tags=["x"])
    cursor = (await feed(api, owner))["cursor"]

    results = await push(api, owner, [upsert(record["id"], 1, content="same", tags=["X"])])

    assert results[0]["status"] == "applied"
    assert results[0]["record"]["version"] == 1
    assert (await feed(api, owner, since=cursor))["changes"] == []


async def test_the_device_comes_from_the_body_or_the_header(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    api, owner = records_stack.mobile, records_owner
    from_header, from_body = new_id(), new_id()
    response = await api.post(
        f"{SYNC}/push",
        json={"items": [upsert(from_header, 0, content="a")]},
        headers={**owner.headers, "X-Device-ID": "watch"},
    )
    assert response.status_code == 200, response.text
    response = await api.post(
        f"{SYNC}/push",
        json={"device_id": "laptop", "items": [upsert(from_body, 0, content="b")]},
        headers={**owner.headers, "X-Device-ID": "watch"},
    )
    assert response.status_code == 200, response.text

    assert (await records_stack.record_row(from_header)).device_id == "watch"
    assert (await records_stack.record_row(from_body)).device_id == "laptop"


async def test_a_malformed_push_is_422_and_changes_nothing(records_stack: RecordsStack, records_owner: Account) -> None:
    record = await records_stack.create(records_stack.mobile, records_owner, content="kept")
    valid = delete(record["id"], 1)
    malformed: dict[str, Any] = {
        "too-many": ({"items": [valid] * 501}, "body.items"),
        "extra-top-field": ({"items": [valid], "owner_id": records_owner.id}, "body.owner_id"),
        "long-device": ({"device_id": "x" * 65, "items": [valid]}, "body.device_id"),
        "not-a-list": ({"items": "everything"}, "body.items"),
        "items-an-object": ({"items": {"0": valid}}, "body.items"),
        "no-items": ({"device_id": "phone"}, "body.items"),
        "not-an-object": ([valid], "body"),
    }
    for name, (body, field) in malformed.items():
        response = await records_stack.mobile.post(f"{SYNC}/push", json=body, headers=records_owner.headers)
        detail = assert_error(response, 422, "validation_error")
        assert field in [problem["field"] for problem in detail], (name, detail)  # type: ignore[attr-defined]
    # The valid item in those batches did not apply: a malformed body is refused as a whole.
    assert (await records_stack.record_row(record["id"])).is_deleted is False


async def test_an_empty_push_is_200_with_no_results(
    records_api: httpx.AsyncClient, records_stack: RecordsStack, records_owner: Account
) -> None:
    await records_stack.create(records_api, records_owner, content="kept")
    cursor = (await feed(records_api, records_owner))["cursor"]

    empty_pushes: list[dict[str, Any]] = [{"items": []}, {"device_id": "phone", "items": []}]
    for body in empty_pushes:
        response = await records_api.post(f"{SYNC}/push", json=body, headers=records_owner.headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"results": []}
    assert (await feed(records_api, records_owner, since=cursor))["changes"] == []


async def test_one_malformed_item_is_rejected_on_its_own_line_and_the_others_apply(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    api, owner = records_api, records_owner
    existing = await records_stack.create(api, owner, content="before")
    created, bad_op_id, base_id, data_id, schema_id = (new_id() for _ in range(5))
    # (item, the id its result carries, a field its error names)
    malformed: list[tuple[Any, str | None, str]] = [
        ({"id": bad_op_id, "op": "merge", "base_version": 1}, bad_op_id, "op"),
        ({"op": "upsert", "base_version": 0, "data": {"content": "no id"}}, None, "id"),
        ({"id": "not-a-uuid", "op": "delete", "base_version": 1}, "not-a-uuid", "id"),
        ({"id": bad_op_id.upper(), "base_version": 1}, bad_op_id, "op"),
        ({"id": base_id, "op": "upsert", "base_version": "three", "data": {}}, base_id, "base_version"),
        ({"id": base_id, "op": "delete", "base_version": -1}, base_id, "base_version"),
        ({"id": data_id, "op": "upsert", "base_version": 0, "data": "just text"}, data_id, "data"),
        ({"id": data_id, "op": "upsert", "base_version": 0, "data": {}, "force": True}, data_id, "force"),
        ({"id": 42, "op": "delete", "base_version": 1}, None, "id"),
        ({"id": "x" * 1000, "op": "delete", "base_version": 1}, None, "id"),
        (42, None, "item"),
        (None, None, "item"),
        ([created, "upsert"], None, "item"),
        ("upsert", None, "item"),
    ]
    good = [
        upsert(created, 0, content="made offline", kind="diary"),
        upsert(existing["id"], 1, content="after"),
    ]
    failing_schema = upsert(schema_id, 0, title="x" * 201)
    batch = [good[0], *(item for item, _, _ in malformed), failing_schema, good[1]]
    body = {"device_id": "phone", "items": batch}

    response = await api.post(f"{SYNC}/push", json=body, headers=owner.headers)

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(batch)
    first, *rejected, schema_result, last = results
    assert (first["id"], first["status"], first["code"], first["error"]) == (created, "applied", None, None)
    assert (last["id"], last["status"], last["record"]["content"]) == (existing["id"], "applied", "after")
    for (item, echoed_id, field), result in zip(malformed, rejected, strict=True):
        assert result["status"] == "rejected" and result["record"] is None, (item, result)
        assert result["id"] == echoed_id, (item, result)
        assert result["code"] == "invalid_item", (item, result)
        assert result["error"].startswith("invalid item: ") and f"{field}:" in result["error"], (item, result)
    assert (schema_result["status"], schema_result["code"]) == ("rejected", "invalid_data")
    assert "data.title:" in schema_result["error"]
    # The good items were stored; nothing of the malformed ones was.
    assert (await record_of(api, owner, created)).json()["kind"] == "diary"
    assert await records_stack.record_count(owner.id) == 2
    for never in (bad_op_id, base_id, data_id, schema_id):
        assert (await record_of(api, owner, never)).status_code == 404
    cursor = (await feed(api, owner))["cursor"]

    # Retried as a whole (its answer was lost): the same answers, nothing applied twice.
    retried = await api.post(f"{SYNC}/push", json=body, headers=owner.headers)

    assert retried.status_code == 200, retried.text
    assert retried.json()["results"] == results
    assert (await feed(api, owner, since=cursor))["changes"] == []
    assert (await record_of(api, owner, existing["id"])).json()["version"] == 2


async def test_conflicts_and_rejections_carry_a_code(records_stack: RecordsStack, records_owner: Account) -> None:
    api, owner = records_stack.mobile, records_owner
    moved_on = await records_stack.create(api, owner, content="v1")
    gone = await records_stack.create(api, owner, content="v1")
    await api.patch(f"{RECORDS}/{moved_on['id']}", json={"content": "v2", "version": 1}, headers=owner.headers)
    assert (await api.delete(f"{RECORDS}/{gone['id']}", headers=owner.headers)).status_code == 204

    results = await push(
        api,
        owner,
        [
            upsert(moved_on["id"], 1, content="stale"),
            upsert(gone["id"], 1, content="edit of a deleted one"),
            upsert(new_id(), 2, content="an edit of nothing"),
            upsert(moved_on["id"], 2, version=1),
            upsert(new_id(), 0, content="\x00"),
        ],
    )

    assert [(r["status"], r["code"]) for r in results] == [
        ("conflict", "version_conflict"),
        ("conflict", "deleted"),
        ("rejected", "unusable_id"),
        ("rejected", "invalid_data"),
        ("rejected", "invalid_data"),
    ]
    assert results[2]["error"] == UNUSABLE_ID
    assert results[3]["error"].startswith("invalid data: data.version:")
    assert results[4]["error"].startswith("invalid data: ") and "content" in results[4]["error"]


async def test_sync_is_served_on_the_web_port_too(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record_id = new_id()
    results = await push(records_api, records_owner, [upsert(record_id, 0, content="either port")])
    page = await feed(records_api, records_owner)
    assert results[0]["status"] == "applied"
    assert [c["id"] for c in page["changes"]] == [record_id]
