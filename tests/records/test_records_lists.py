"""Record lists and tags on both ports: newest first, cursor pages stable under ties, filters,
the page-size cap; tags normalised and counted."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from tests.records.conftest import RECORDS, Account, RecordsStack
from tests.support import assert_error


async def page(client: httpx.AsyncClient, account: Account, **params: Any) -> dict[str, Any]:
    response = await client.get(RECORDS, params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def all_pages(client: httpx.AsyncClient, account: Account, cursor: str | None = None, **params: Any) -> list[str]:
    """Every id the list gives from `cursor` on, following `next_cursor` to the end."""
    ids: list[str] = []
    for _ in range(100):
        body = await page(client, account, **params, **({"cursor": cursor} if cursor else {}))
        assert len(body["items"]) <= params.get("limit", 50)
        ids += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("the pages never ended")


def cursor_of(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


# -- order and pages ----------------------------------------------------------------------


async def test_lists_are_newest_first(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    moments = {
        "middle": "2024-03-02T12:00:00Z",
        "newest": "2024-03-03T01:00:00+08:00",  # 2024-03-02T17:00Z
        "oldest": "2024-03-02T19:00:00+08:00",  # 2024-03-02T11:00Z
    }
    made = {
        name: (await records_stack.create(records_api, records_owner, occurred_at=at))["id"]
        for name, at in moments.items()
    }
    body = await page(records_api, records_owner)
    assert [item["id"] for item in body["items"]] == [made["newest"], made["middle"], made["oldest"]]
    assert body["next_cursor"] is None


async def test_pages_are_stable_under_ties(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    same = "2024-06-01T08:00:00Z"
    tied = [(await records_stack.create(records_api, records_owner, occurred_at=same))["id"] for _ in range(7)]
    later = await records_stack.create(records_api, records_owner, occurred_at="2024-06-01T09:00:00Z")
    earlier = await records_stack.create(records_api, records_owner, occurred_at="2024-06-01T07:00:00Z")

    ids = await all_pages(records_api, records_owner, limit=2)
    assert len(ids) == 9
    assert sorted(ids) == sorted([*tied, later["id"], earlier["id"]])  # every record exactly once
    assert ids[0] == later["id"]
    assert ids[-1] == earlier["id"]
    assert ids == [item["id"] for item in (await page(records_api, records_owner, limit=200))["items"]]

    # A record written between two pages does not shift what the next page holds.
    first = await page(records_api, records_owner, limit=3)
    await records_stack.create(records_api, records_owner, occurred_at=same)
    rest = await all_pages(records_api, records_owner, limit=3, cursor=first["next_cursor"])
    seen = [item["id"] for item in first["items"]] + rest
    assert len(seen) == len(set(seen))
    assert set(ids) <= set(seen)


async def test_page_size_is_capped_and_bad_parameters_are_refused(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    await records_stack.create(records_api, records_owner)
    headers = records_owner.headers
    assert (await records_api.get(RECORDS, params={"limit": 200}, headers=headers)).status_code == 200
    for params in (
        {"limit": 201},
        {"limit": 0},
        {"limit": -1},
        {"kind": "essay"},
        {"from": "2024-01-01T00:00:00"},
        {"to": "2024-01-01T00:00:00"},
        {"from": "yesterday"},
        {"tag": "x" * 40},
    ):
        response = await records_api.get(RECORDS, params=params, headers=headers)
        assert_error(response, 422, "validation_error")
    for cursor in (
        "garbage!",
        "bm90LWpzb24",  # "not-json"
        cursor_of(["2024-01-01T00:00:00", "naive-time"]),
        cursor_of(["2024-01-01T00:00:00Z"]),
        cursor_of({"a": 1, "b": 2}),
        cursor_of([5, "id"]),
    ):
        response = await records_api.get(RECORDS, params={"cursor": cursor}, headers=headers)
        assert_error(response, 422, "validation_error")
        assert response.json()["detail"][0]["field"] == "query.cursor"


# -- filters ------------------------------------------------------------------------------


async def test_filters_by_kind_tag_and_time(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    def make(at: str, kind: str = "note", tags: tuple[str, ...] = ()) -> Any:
        return records_stack.create(records_api, records_owner, occurred_at=at, kind=kind, tags=list(tags))

    day1 = (await make("2024-01-01T00:00:00Z", "diary", ("Work",)))["id"]
    day2 = (await make("2024-01-02T00:00:00Z", "todo", ("work", "家")))["id"]
    day3 = (await make("2024-01-03T00:00:00Z", "diary", ("家",)))["id"]

    async def ids(**params: Any) -> list[str]:
        return await all_pages(records_api, records_owner, limit=1, **params)

    assert await ids(kind="diary") == [day3, day1]
    assert await ids(kind="link") == []
    assert await ids(tag="work") == [day2, day1]
    assert await ids(tag="#WORK") == [day2, day1]
    assert await ids(tag=" Work ") == [day2, day1]
    assert await ids(tag="家") == [day3, day2]
    assert await ids(tag="nothing") == []
    # `from` is inclusive, `to` exclusive; any time zone names the same instant.
    assert await ids(**{"from": "2024-01-02T00:00:00Z", "to": "2024-01-03T00:00:00Z"}) == [day2]
    assert await ids(**{"from": "2024-01-02T08:00:00+08:00"}) == [day3, day2]
    assert await ids(to="2024-01-02T00:00:00Z") == [day1]
    assert await ids(kind="diary", tag="家") == [day3]
    assert await ids(kind="diary", tag="work", to="2024-01-01T00:00:00.000001Z") == [day1]


async def test_several_kinds_are_any_of_and_several_tags_all_of(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    def make(at: str, kind: str, tags: tuple[str, ...] = ()) -> Any:
        return records_stack.create(records_api, records_owner, occurred_at=at, kind=kind, tags=list(tags))

    note = (await make("2024-01-01T00:00:00Z", "note", ("work",)))["id"]
    diary = (await make("2024-01-02T00:00:00Z", "diary", ("work", "家")))["id"]
    todo = (await make("2024-01-03T00:00:00Z", "todo", ("家",)))["id"]
    diary2 = (await make("2024-01-04T00:00:00Z", "diary", ("WORK", "家", "trip")))["id"]
    link = (await make("2024-01-05T00:00:00Z", "link"))["id"]

    async def ids(**params: Any) -> list[str]:
        # Pages of one: the cursor carries on with the same filters to the end.
        return await all_pages(records_api, records_owner, limit=1, **params)

    assert await ids(kind=["note", "diary"]) == [diary2, diary, note]
    assert await ids(kind=["diary", "note", "diary"]) == [diary2, diary, note]  # repeats change nothing
    assert await ids(kind=["todo", "link", "photo"]) == [link, todo]
    assert await ids(kind=["photo", "voice"]) == []
    assert await ids(tag=["work", "家"]) == [diary2, diary]  # every tag named
    assert await ids(tag=["#Work", " 家 ", "trip"]) == [diary2]
    assert await ids(tag=["work", "nothing"]) == []
    assert await ids(tag=["work", "work"]) == [diary2, diary, note]
    assert await ids(kind=["note", "todo"], tag=["家"]) == [todo]
    assert await ids(kind=["note", "diary"], tag=["work"], to="2024-01-04T00:00:00Z") == [diary, note]
    # One value is the single filter it always was; on the query string it reads the same.
    assert await ids(kind="diary") == [diary2, diary]
    response = await records_api.get(f"{RECORDS}?kind=note&kind=todo&limit=50", headers=records_owner.headers)
    assert [item["id"] for item in response.json()["items"]] == [todo, note]

    # A bad value among good ones names itself; too many tags are refused.
    headers = records_owner.headers
    response = await records_api.get(RECORDS, params={"kind": ["note", "essay"]}, headers=headers)
    detail = assert_error(response, 422, "validation_error")
    assert [problem["field"] for problem in detail] == ["query.kind.1"]  # type: ignore[attr-defined]
    response = await records_api.get(RECORDS, params={"tag": ["ok", "x" * 40]}, headers=headers)
    detail = assert_error(response, 422, "validation_error")
    assert [problem["field"] for problem in detail] == ["query.tag.1"]  # type: ignore[attr-defined]
    response = await records_api.get(RECORDS, params={"tag": [f"t{n}" for n in range(11)]}, headers=headers)
    assert_error(response, 422, "validation_error")


# -- tags ---------------------------------------------------------------------------------


async def test_tags_are_normalised(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    raw = [" Work ", "#Travel", "WORK", "旅行", "#旅行", "Straße", "## deep   work ", "#", "   "]
    record = await records_stack.create(records_api, records_owner, tags=raw)
    assert record["tags"] == ["work", "travel", "旅行", "strasse", "deep work"]

    response = await records_api.patch(
        f"{RECORDS}/{record['id']}",
        json={"version": 1, "tags": ["#TODO", "todo", " 家庭 "]},
        headers=records_owner.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["tags"] == ["todo", "家庭"]


async def test_tag_counts_most_used_first(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    async def counts() -> list[dict[str, Any]]:
        response = await records_api.get("/api/v1/tags", headers=records_owner.headers)
        assert response.status_code == 200
        return response.json()

    assert await counts() == []
    await records_stack.create(records_api, records_owner, tags=["A", "b"])
    second = await records_stack.create(records_api, records_owner, tags=["B", "c"])
    await records_stack.create(records_api, records_owner, tags=["#b", "C"])
    await records_stack.create(records_api, records_owner, tags=["旅行"])
    assert await counts() == [
        {"name": "b", "count": 3},
        {"name": "c", "count": 2},
        {"name": "a", "count": 1},
        {"name": "旅行", "count": 1},
    ]

    response = await records_api.patch(
        f"{RECORDS}/{second['id']}", json={"version": 1, "tags": ["旅行"]}, headers=records_owner.headers
    )
    assert response.status_code == 200
    assert await counts() == [
        {"name": "b", "count": 2},
        {"name": "旅行", "count": 2},
        {"name": "a", "count": 1},
        {"name": "c", "count": 1},
    ]
    assert (await records_api.delete(f"{RECORDS}/{second['id']}", headers=records_owner.headers)).status_code == 204
    assert await counts() == [
        {"name": "b", "count": 2},
        {"name": "a", "count": 1},
        {"name": "c", "count": 1},
        {"name": "旅行", "count": 1},
    ]
