"""Records through the API on both ports: create, read, edit with versions, delete; bad input
and mass assignment refused with nothing stored; idempotent create; a second user reaches nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx

from tests.records.conftest import RECORDS, Account, RecordsStack
from tests.support import assert_error, assert_problems

RECORD_KEYS = {
    "id",
    "kind",
    "title",
    "content",
    "tags",
    "occurred_at",
    "created_at",
    "updated_at",
    "version",
    "ai_opt_out",
    "shared",
    "attachments",
    "ai",
    "extraction",
}
# Columns only the server writes: a body naming one is refused.
SERVER_FIELDS: dict[str, Any] = {
    "owner_id": "01a1fffe-0000-7000-8000-000000000000",
    "is_deleted": True,
    "deleted_at": "2024-01-01T00:00:00Z",
    "ai_status": "done",
    "ai_title": "injected",
    "ai_summary": "injected",
    "ai_tags": ["injected"],
    "share_slug": "0123456789abcdef0123456789abcdef",
    "change_seq": 999,
    "shared": True,
    "created_at": "2020-01-01T00:00:00Z",
}


def aware(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.utcoffset() is not None, f"{value} has no time zone"
    return moment


def assert_record(record: dict[str, Any]) -> None:
    """The Record shape clients rely on, exactly."""
    assert set(record) == RECORD_KEYS, record
    for key in ("occurred_at", "created_at", "updated_at"):
        aware(record[key])
    assert set(record["ai"]) == {"status", "title", "summary", "tags", "error"}
    # A note has nothing read from behind it; a link record has (`test_extraction_state.py`).
    assert record["extraction"] is None or record["kind"] == "link"
    assert isinstance(record["attachments"], list)


async def read(client: httpx.AsyncClient, account: Account, record_id: str) -> httpx.Response:
    return await client.get(f"{RECORDS}/{record_id}", headers=account.headers)


async def listed_ids(client: httpx.AsyncClient, account: Account) -> list[str]:
    response = await client.get(RECORDS, params={"limit": 200}, headers=account.headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


# -- create, read, edit, delete -----------------------------------------------------------


async def test_create_answers_the_full_record(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    body = {
        "kind": "diary",
        "title": "周末",
        "content": "# Saturday\n\n去公园散步。",
        "tags": ["family", "周末"],
        "occurred_at": "2024-05-04T09:30:00+08:00",
    }
    response = await records_api.post(RECORDS, json=body, headers=records_owner.headers)
    assert response.status_code == 201, response.text
    record = response.json()
    assert_record(record)
    uuid.UUID(record["id"])
    assert {k: record[k] for k in ("kind", "title", "content", "tags")} == {
        k: body[k] for k in ("kind", "title", "content", "tags")
    }
    assert aware(record["occurred_at"]) == datetime.fromisoformat("2024-05-04T01:30:00+00:00")
    assert record["version"] == 1
    assert record["ai_opt_out"] is False
    assert record["shared"] is False
    assert record["attachments"] == []
    assert record["ai"] == {"status": "pending", "title": None, "summary": None, "tags": [], "error": None}
    assert response.headers["etag"] == '"1"'

    opted_out = await records_stack.create(records_api, records_owner, ai_opt_out=True)
    assert opted_out["ai"]["status"] == "skipped"
    assert opted_out["kind"] == "note"  # the default kind
    aware(opted_out["occurred_at"])  # defaults to now, with a zone
    assert await records_stack.record_count(records_owner.id) == 2


async def test_read_edit_delete(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    created = await records_stack.create(records_api, records_owner, content="订机票 budget", tags=["travel"])
    record_id = created["id"]

    response = await read(records_api, records_owner, record_id)
    assert response.status_code == 200
    assert response.json() == created
    assert response.headers["etag"] == '"1"'
    assert record_id in await listed_ids(records_api, records_owner)

    response = await records_api.patch(
        f"{RECORDS}/{record_id}",
        json={"title": "Trip", "content": "订火车票", "kind": "todo"},
        headers={**records_owner.headers, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert_record(edited)
    assert (edited["title"], edited["content"], edited["kind"], edited["version"]) == ("Trip", "订火车票", "todo", 2)
    assert edited["tags"] == ["travel"]  # untouched fields stay
    assert edited["created_at"] == created["created_at"]
    assert aware(edited["updated_at"]) >= aware(created["updated_at"])
    assert (await read(records_api, records_owner, record_id)).json() == edited

    response = await records_api.delete(f"{RECORDS}/{record_id}", headers=records_owner.headers)
    assert response.status_code == 204
    assert response.content == b""

    assert_error(await read(records_api, records_owner, record_id), 404, "not_found")
    patch = await records_api.patch(
        f"{RECORDS}/{record_id}", json={"version": 3, "title": "again"}, headers=records_owner.headers
    )
    assert_error(patch, 404, "not_found")
    assert_error(await records_api.delete(f"{RECORDS}/{record_id}", headers=records_owner.headers), 404, "not_found")
    assert record_id not in await listed_ids(records_api, records_owner)
    assert (await records_api.get("/api/v1/tags", headers=records_owner.headers)).json() == []
    for query in ("火车票", "travel"):
        found = await records_api.get("/api/v1/search", params={"q": query}, headers=records_owner.headers)
        assert found.status_code == 200
        assert found.json()["items"] == []


async def test_a_record_made_on_one_port_is_the_same_on_the_other(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    created = await records_stack.create(records_stack.mobile, records_owner, content="from the phone")
    response = await records_stack.web.patch(
        f"{RECORDS}/{created['id']}", json={"version": 1, "content": "edited on the web"}, headers=records_owner.headers
    )
    assert response.status_code == 200, response.text
    assert (await read(records_stack.mobile, records_owner, created["id"])).json() == response.json()


# -- bad input ----------------------------------------------------------------------------

INVALID_CREATES: list[tuple[str, dict[str, Any]]] = [
    ("unknown kind", {"content": "x", "kind": "essay"}),
    ("naive occurred_at", {"content": "x", "occurred_at": "2024-05-04T09:30:00"}),
    ("content too long", {"content": "a" * 200_001}),
    ("too many tags", {"content": "x", "tags": [f"t{i}" for i in range(33)]}),
    ("tag too long", {"content": "x", "tags": ["y" * 33]}),
    ("title too long", {"content": "x", "title": "t" * 201}),
    ("extra field", {"content": "x", "colour": "blue"}),
    ("version", {"content": "x", "version": 5}),
    # What Pydantic's lax mode took and the document does not allow (found by tests/fuzz):
    ("ai_opt_out as a number", {"content": "x", "ai_opt_out": 0}),
    ("ai_opt_out as text", {"content": "x", "ai_opt_out": "true"}),
    ("occurred_at as seconds", {"content": "x", "occurred_at": 1_700_000_000}),
    ("occurred_at as seconds in text", {"content": "x", "occurred_at": "0.5"}),
    *((name, {"content": "x", name: value}) for name, value in SERVER_FIELDS.items()),
]


async def test_invalid_creates_are_refused_and_store_nothing(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    for case, body in INVALID_CREATES:
        response = await records_api.post(RECORDS, json=body, headers=records_owner.headers)
        assert response.status_code == 422, (case, response.text)
        assert response.json()["error"] == "validation_error", case
    assert await records_stack.record_count() == 0
    assert await records_stack.events() == []


async def test_the_limits_themselves_are_allowed(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record = await records_stack.create(
        records_api,
        records_owner,
        content="word " * 40_000,  # exactly 200,000 characters
        tags=[f"t{i}" for i in range(31)] + ["y" * 32],
    )
    assert len(record["content"]) == 200_000
    assert len(record["tags"]) == 32


async def test_invalid_edits_are_refused_and_change_nothing(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    created = await records_stack.create(records_api, records_owner, content="original", tags=["keep"])
    before = await records_stack.record_row(created["id"])
    url = f"{RECORDS}/{created['id']}"
    cases = [(case, body) for case, body in INVALID_CREATES if case != "version"]
    cases += [("id", {"id": str(uuid.uuid4())}), ("version 0", {"version": 0})]
    for case, body in cases:
        response = await records_api.patch(url, json=body, headers={**records_owner.headers, "If-Match": '"1"'})
        assert response.status_code == 422, (case, response.text)

    # A body `version` names the version edited; it can never set one.
    response = await records_api.patch(url, json={"version": 7, "content": "x"}, headers=records_owner.headers)
    assert response.status_code == 409

    assert (await read(records_api, records_owner, created["id"])).json() == created
    after = await records_stack.record_row(created["id"])
    for column in ("owner_id", "version", "change_seq", "is_deleted", "deleted_at", "share_slug", "ai_status"):
        assert getattr(after, column) == getattr(before, column), column
    assert (after.ai_title, after.ai_summary, after.ai_tags) == (None, None, [])
    assert len(await records_stack.events()) == 1  # the create only


async def test_list_dates_are_iso_text_not_seconds(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    # `?to=0.5` was read as half a second after 1970 (Pydantic's lax datetime; tests/fuzz).
    for query in ({"to": "0.5"}, {"from": "1700000000"}):
        response = await records_api.get(RECORDS, params=query, headers=records_owner.headers)
        (problem,) = assert_problems(response)
        assert problem["field"] == f"query.{next(iter(query))}", problem
    response = await records_api.get(RECORDS, params={"to": "2026-03-14T09:30:00Z"}, headers=records_owner.headers)
    assert response.status_code == 200, response.text


# -- versions -----------------------------------------------------------------------------


async def test_an_edit_names_its_version(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record = await records_stack.create(records_api, records_owner, content="v1")
    url = f"{RECORDS}/{record['id']}"

    assert_error(
        await records_api.patch(url, json={"content": "v2"}, headers=records_owner.headers),
        428,
        "precondition_required",
    )
    response = await records_api.patch(
        url, json={"content": "v2"}, headers={**records_owner.headers, "If-Match": "not-a-version"}
    )
    assert_error(response, 428, "precondition_required")
    assert (await read(records_api, records_owner, record["id"])).json()["version"] == 1

    response = await records_api.patch(
        url, json={"content": "v2"}, headers={**records_owner.headers, "If-Match": '"1"'}
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    assert response.headers["etag"] == '"2"'

    response = await records_api.patch(url, json={"content": "v3", "version": 2}, headers=records_owner.headers)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 3

    response = await records_api.patch(
        url, json={"content": "v4"}, headers={**records_owner.headers, "If-Match": 'W/"3"'}
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 4
    assert (await read(records_api, records_owner, record["id"])).headers["etag"] == '"4"'


async def test_a_delete_naming_no_version_is_428_as_documented(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    # Found by tests/fuzz: a DELETE with `If-Match: null` answered 428, which its document
    # did not list (the PATCH's did).
    record = await records_stack.create(records_api, records_owner, content="keep")
    url = f"{RECORDS}/{record['id']}"
    response = await records_api.delete(url, headers={**records_owner.headers, "If-Match": "null"})
    assert_error(response, 428, "precondition_required")
    assert (await read(records_api, records_owner, record["id"])).status_code == 200
    document = (await records_api.get("/openapi.json")).json()
    assert "428" in document["paths"][RECORDS + "/{record_id}"]["delete"]["responses"]
    response = await records_api.delete(url, headers={**records_owner.headers, "If-Match": '"1"'})
    assert response.status_code == 204, response.text


async def test_a_stale_edit_conflicts_and_carries_the_current_record(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record = await records_stack.create(records_api, records_owner, content="first")
    url = f"{RECORDS}/{record['id']}"
    phone = await records_api.patch(
        url, json={"version": 1, "content": "from the phone"}, headers=records_owner.headers
    )
    assert phone.status_code == 200

    laptop = await records_api.patch(
        url, json={"version": 1, "content": "from the laptop"}, headers=records_owner.headers
    )
    assert laptop.status_code == 409
    body = laptop.json()
    assert body["error"] == "version_conflict"
    assert_record(body["current"])
    assert body["current"] == phone.json()
    assert body["current"]["version"] == 2
    stale_header = await records_api.patch(
        url, json={"content": "from the laptop"}, headers={**records_owner.headers, "If-Match": '"1"'}
    )
    assert stale_header.status_code == 409
    assert stale_header.json()["current"]["content"] == "from the phone"
    assert (await read(records_api, records_owner, record["id"])).json() == phone.json()

    # A delete may name its version too: a stale one conflicts and deletes nothing.
    stale_delete = await records_api.delete(url, headers={**records_owner.headers, "If-Match": '"1"'})
    assert stale_delete.status_code == 409
    assert stale_delete.json()["current"] == phone.json()
    assert (await read(records_api, records_owner, record["id"])).status_code == 200
    deleted = await records_api.delete(url, headers={**records_owner.headers, "If-Match": '"2"'})
    assert deleted.status_code == 204


async def test_an_edit_that_changes_nothing_keeps_the_version(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record = await records_stack.create(records_api, records_owner, content="same", tags=["a"], title="t")
    response = await records_api.patch(
        f"{RECORDS}/{record['id']}",
        json={"version": 1, "content": "same", "tags": ["#A"], "title": "t"},
        headers=records_owner.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json() == record
    assert response.headers["etag"] == '"1"'
    assert len(await records_stack.events()) == 1


# -- idempotent create --------------------------------------------------------------------


async def test_a_repeated_create_with_a_client_id_returns_the_same_record(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    client_id = str(uuid.uuid4())
    first = await records_api.post(RECORDS, json={"id": client_id, "content": "offline"}, headers=records_owner.headers)
    assert first.status_code == 201, first.text
    assert first.json()["id"] == client_id
    again = await records_api.post(RECORDS, json={"id": client_id, "content": "offline"}, headers=records_owner.headers)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert await records_stack.record_count() == 1
    assert len(await records_stack.events()) == 1

    response = await records_api.post(RECORDS, json={"id": "not-a-uuid", "content": "x"}, headers=records_owner.headers)
    assert response.status_code == 422
    assert "id" in response.json()["detail"][0]["field"]
    assert await records_stack.record_count() == 1


async def test_a_client_id_taken_by_another_user_reveals_nothing(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account, records_stranger: Account
) -> None:
    mine = await records_stack.create(
        records_api, records_owner, id=str(uuid.uuid4()), title="密码提示", content="the safe code is 4711"
    )
    response = await records_api.post(
        RECORDS, json={"id": mine["id"], "content": "mine now"}, headers=records_stranger.headers
    )
    assert_error(response, 409, "conflict")
    for secret in ("密码提示", "4711", records_owner.id, records_owner.username, mine["created_at"]):
        assert secret not in response.text
    assert await records_stack.record_count(records_stranger.id) == 0
    assert (await read(records_api, records_owner, mine["id"])).json() == mine


async def test_concurrent_creates_with_one_client_id_make_one_record(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    client_id = str(uuid.uuid4())
    body = {"id": client_id, "content": "sent twice by a flaky network"}
    responses = await asyncio.gather(
        *(records_api.post(RECORDS, json=body, headers=records_owner.headers) for _ in range(5))
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201], [r.text for r in responses]
    assert {r.json()["id"] for r in responses} == {client_id}
    assert await records_stack.record_count() == 1
    assert [e["type"] for e in await records_stack.events()] == ["created"]


# -- isolation ----------------------------------------------------------------------------


async def test_a_second_user_reaches_nothing_of_the_first(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account, records_stranger: Account
) -> None:
    secret = await records_stack.create(
        records_api, records_owner, title="体检报告", content="blood pressure fine, 预算 budget", tags=["health"]
    )
    url = f"{RECORDS}/{secret['id']}"
    stranger = records_stranger.headers

    assert_error(await records_api.get(url, headers=stranger), 404, "not_found")
    for headers, body in (
        ({**stranger, "If-Match": '"1"'}, {"content": "pwned"}),
        (stranger, {"version": 1, "title": "x"}),
    ):
        assert_error(await records_api.patch(url, json=body, headers=headers), 404, "not_found")
    assert_error(await records_api.delete(url, headers=stranger), 404, "not_found")
    assert_error(await records_api.delete(url, headers={**stranger, "If-Match": '"1"'}), 404, "not_found")

    await records_stack.create(records_api, records_stranger, content="my own budget", tags=["own"])
    assert secret["id"] not in await listed_ids(records_api, records_stranger)
    assert len(await listed_ids(records_api, records_stranger)) == 1
    tags = await records_api.get("/api/v1/tags", headers=stranger)
    assert tags.json() == [{"name": "own", "count": 1}]
    filtered = await records_api.get(RECORDS, params={"tag": "health"}, headers=stranger)
    assert filtered.json()["items"] == []
    for query in ("budget", "预算", "体检", "blood"):
        hits = (await records_api.get("/api/v1/search", params={"q": query}, headers=stranger)).json()["items"]
        assert secret["id"] not in {hit["record"]["id"] for hit in hits}, query

    assert (await read(records_api, records_owner, secret["id"])).json() == secret


async def test_an_id_no_record_can_have_is_404_not_a_500(
    records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    """Too long for an id, or with a NUL (a parameter PostgreSQL refuses): not found, as
    every owner-scoped lookup answers it (`common.database.repository.plausible_id`)."""
    headers = records_owner.headers
    for record_id in ("x" * 37, "a%00b"):
        url = f"{RECORDS}/{record_id}"
        assert_error(await records_api.get(url, headers=headers), 404, "not_found")
        edit = await records_api.patch(url, json={"version": 1, "title": "x"}, headers=headers)
        assert_error(edit, 404, "not_found")
        assert_error(await records_api.delete(url, headers=headers), 404, "not_found")
        assert_error(await records_api.post(f"{url}/restore", headers=headers), 404, "not_found")
        assert_error(await records_api.post(f"{url}/share", headers=headers), 404, "not_found")
        assert_error(await records_api.get(f"/api/v1/attachments/{record_id}", headers=headers), 404, "not_found")


# -- both ports ---------------------------------------------------------------------------


async def test_request_ids_are_echoed_and_a_token_is_required(
    records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record_url = f"{RECORDS}/{uuid.uuid4()}"
    calls = [
        ("POST", RECORDS, {"content": "x"}),
        ("GET", RECORDS, None),
        ("GET", record_url, None),
        ("PATCH", record_url, {"version": 1}),
        ("DELETE", record_url, None),
        ("GET", "/api/v1/tags", None),
        ("GET", "/api/v1/search?q=budget", None),
    ]
    for method, url, body in calls:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            response = await records_api.request(method, url, json=body, headers={**headers, "X-Request-ID": "req-42"})
            assert_error(response, 401, "invalid_token" if headers else "unauthorized")
            assert response.headers["x-request-id"] == "req-42"
            assert response.headers["www-authenticate"].startswith('Bearer realm="jilu"')

    response = await records_api.get(RECORDS, headers={**records_owner.headers, "X-Request-ID": "trace.me-7"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace.me-7"
    response = await records_api.get(RECORDS, headers=records_owner.headers)
    assert response.headers["x-request-id"]
