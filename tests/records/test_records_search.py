"""Search on SQLite (FTS5) and PostgreSQL (tsvector): Chinese words of two to four characters,
English words and prefixes, mixed queries, ranking, highlights, filters, and an index that
follows every edit and delete and never crosses users."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import InvalidRequestError

from common.records.search import SearchFilters, parse_query, ranked_records, search
from tests.records.conftest import RECORDS, Account, RecordsStack
from tests.support import assert_error

SEARCH = "/api/v1/search"


async def hits(client: httpx.AsyncClient, account: Account, q: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(SEARCH, params={"q": q, **params}, headers=account.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    # A next page only when this one is full.
    assert body["next_cursor"] is None or len(body["items"]) == int(params.get("limit", 20))
    for hit in body["items"]:
        assert set(hit) == {"record", "score", "highlight", "matched_in", "attachment_id"}
    return body["items"]


async def found(client: httpx.AsyncClient, account: Account, q: str, **params: Any) -> set[str]:
    return {hit["record"]["id"] for hit in await hits(client, account, q, **params)}


@pytest.fixture
def search_api(records_stack: RecordsStack) -> httpx.AsyncClient:
    """Search is one piece of code behind both ports: these tests run on mobile, one on web."""
    return records_stack.mobile


async def test_chinese_words_of_two_three_and_four_characters(
    records_stack: RecordsStack, search_api: httpx.AsyncClient, records_owner: Account
) -> None:
    async def make(content: str) -> str:
        return (await records_stack.create(search_api, records_owner, content=content))["id"]

    meeting = await make("今天下午开会讨论预算")
    computer = await make("我买了一台新的计算机，速度很快")
    ai = await make("人工智能正在改变我们的工作方式")
    other = await make("明天早上去公园跑步，会很累")  # 会 alone, but no 开会 / 预算

    assert await found(search_api, records_owner, "开会") == {meeting}
    assert await found(search_api, records_owner, "预算") == {meeting}
    assert await found(search_api, records_owner, "讨论预算") == {meeting}
    assert await found(search_api, records_owner, "计算机") == {computer}
    assert await found(search_api, records_owner, "人工智能") == {ai}
    assert await found(search_api, records_owner, "公园") == {other}
    assert await found(search_api, records_owner, "会讨") == {meeting}  # across jieba's word boundary
    assert await found(search_api, records_owner, "开车") == set()
    assert await found(search_api, records_owner, "机器学习") == set()


async def test_english_words_case_and_prefixes(
    records_stack: RecordsStack, search_api: httpx.AsyncClient, records_owner: Account
) -> None:
    budget = (await records_stack.create(search_api, records_owner, content="Quarterly Budget review with the team"))[
        "id"
    ]
    running = (await records_stack.create(search_api, records_owner, content="morning run in the park"))["id"]

    for query in ("budget", "BUDGET", "Budget", "budg", "quarterly review"):
        assert await found(search_api, records_owner, query) == {budget}, query
    assert await found(search_api, records_owner, "park") == {running}
    assert await found(search_api, records_owner, "budget park") == set()  # every word must match
    assert await found(search_api, records_owner, "bugdet") == set()


async def test_mixed_chinese_and_english(
    records_stack: RecordsStack, search_api: httpx.AsyncClient, records_owner: Account
) -> None:
    both = (await records_stack.create(search_api, records_owner, content="下季度预算 budget 需要重新规划"))["id"]
    chinese = (await records_stack.create(search_api, records_owner, content="预算已经批准"))["id"]
    english = (await records_stack.create(search_api, records_owner, content="budget approved"))["id"]

    assert await found(search_api, records_owner, "预算 budget") == {both}
    assert await found(search_api, records_owner, "预算") == {both, chinese}
    assert await found(search_api, records_owner, "budget") == {both, english}
    assert await found(search_api, records_owner, "预算budget") == {both}


async def test_a_title_match_ranks_above_a_match_deep_in_the_body(
    records_stack: RecordsStack, search_api: httpx.AsyncClient, records_owner: Account
) -> None:
    filler = "今天天气不错，我们去散步然后回家做饭。 " * 40
    titled = (await records_stack.create(search_api, records_owner, title="预算会议", content="细节见附件。"))["id"]
    # The deep one is the newer: ranking, not recency, has to put the titled one first.
    deep = (await records_stack.create(search_api, records_owner, title="流水账", content=filler + "顺便谈了预算"))[
        "id"
    ]
    await records_stack.create(search_api, records_owner, content="无关的记录")

    results = await hits(search_api, records_owner, "预算")
    assert [hit["record"]["id"] for hit in results] == [titled, deep]
    assert results[0]["score"] > results[1]["score"]
    assert [hit["record"]["id"] for hit in await hits(search_api, records_owner, "预算", limit=1)] == [titled]


async def test_highlights_mark_matches_and_escape_the_record(
    records_stack: RecordsStack, search_api: httpx.AsyncClient, records_owner: Account
) -> None:
    await records_stack.create(
        search_api, records_owner, content='<b>预算</b> and <script>alert("budget")</script> 讨论'
    )
    (hit,) = await hits(search_api, records_owner, "预算")
    highlight = hit["highlight"]
    assert "<mark>预算</mark>" in highlight
    assert "&lt;b&gt;" in highlight
    assert "<b>" not in highlight
    assert "<script>" not in highlight
    assert "&lt;script&gt;" in highlight
    assert highlight.replace("<mark>", "").replace("</mark>", "").count("<") == 0

    (hit,) = await hits(search_api, records_owner, "Budget")
    assert "<mark>budget</mark>" in hit["highlight"]

    long_text = "很长的一段话。" * 60 + "最后提到了人工智能。" + "再写一些。" * 60
    await records_stack.create(search_api, records_owner, content=long_text)
    (hit,) = await hits(search_api, records_owner, "人工智能")
    assert "<mark>人工智能</mark>" in hit["highlight"]
    assert len(hit["highlight"]) < len(long_text) // 2  # an excerpt around the match, not the record


async def test_search_filters_by_kind_and_tag(
    records_stack: RecordsStack, search_api: httpx.AsyncClient, records_owner: Account
) -> None:
    diary = (await records_stack.create(search_api, records_owner, kind="diary", content="预算 diary", tags=["Home"]))[
        "id"
    ]
    todo = (await records_stack.create(search_api, records_owner, kind="todo", content="预算 todo", tags=["work"]))[
        "id"
    ]

    assert await found(search_api, records_owner, "预算") == {diary, todo}
    assert await found(search_api, records_owner, "预算", kind="diary") == {diary}
    assert await found(search_api, records_owner, "预算", tag="WORK") == {todo}
    assert await found(search_api, records_owner, "预算", kind="diary", tag="work") == set()
    assert await found(search_api, records_owner, "home") == {diary}  # tags are searchable text too


async def test_the_index_follows_edits_and_deletes(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    record = await records_stack.create(records_api, records_owner, title="旧标题", content="去超市买苹果 apples")
    url = f"{RECORDS}/{record['id']}"
    assert await found(records_api, records_owner, "苹果") == {record["id"]}

    response = await records_api.patch(
        url, json={"version": 1, "title": "新计划", "content": "学习人工智能 python"}, headers=records_owner.headers
    )
    assert response.status_code == 200, response.text
    for gone in ("苹果", "apples", "超市", "旧标题"):
        assert await found(records_api, records_owner, gone) == set(), gone
    for new in ("人工智能", "python", "新计划"):
        assert await found(records_api, records_owner, new) == {record["id"]}, new

    assert (await records_api.delete(url, headers=records_owner.headers)).status_code == 204
    for query in ("人工智能", "python", "新计划"):
        assert await found(records_api, records_owner, query) == set(), query


async def test_results_only_come_from_the_callers_records(
    records_stack: RecordsStack, search_api: httpx.AsyncClient, records_owner: Account, records_stranger: Account
) -> None:
    mine = (await records_stack.create(search_api, records_owner, content="共同的词 shared budget"))["id"]
    theirs = (await records_stack.create(search_api, records_stranger, content="共同的词 shared budget"))["id"]

    assert await found(search_api, records_owner, "budget") == {mine}
    assert await found(search_api, records_stranger, "budget") == {theirs}
    assert await found(search_api, records_stranger, "共同") == {theirs}


async def test_bad_and_empty_queries(
    records_stack: RecordsStack, search_api: httpx.AsyncClient, records_owner: Account
) -> None:
    await records_stack.create(search_api, records_owner, content="预算 budget!!! 。。。")
    headers = records_owner.headers
    bad: list[dict[str, Any]] = [
        {},
        {"q": ""},
        {"q": "x" * 201},
        {"q": "budget", "limit": 0},
        {"q": "budget", "limit": 101},
    ]
    for params in bad:
        assert_error(await search_api.get(SEARCH, params=params, headers=headers), 422, "validation_error")
    for query in ("!!!", "。。。，，", '"*()^-', " ", "会", "AND OR NOT", "NEAR(a b)"):
        response = await search_api.get(SEARCH, params={"q": query}, headers=headers)
        assert response.status_code == 200, (query, response.text)
        assert response.json() == {"items": [], "next_cursor": None}, query
    assert len(await hits(search_api, records_owner, "budget*")) == 1


# -- pages --------------------------------------------------------------------------------


async def search_pages(
    client: httpx.AsyncClient, account: Account, q: str, **params: Any
) -> tuple[list[list[str]], list[str]]:
    """Every page of a search, following `next_cursor`: the ids of each page, and the cursors."""
    pages: list[list[str]] = []
    cursors: list[str] = []
    cursor = None
    for _ in range(50):
        response = await client.get(
            SEARCH, params={"q": q, **params, **({"cursor": cursor} if cursor else {})}, headers=account.headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([hit["record"]["id"] for hit in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages, cursors
        cursors.append(cursor)
    raise AssertionError("the pages never ended")


def flat(pages: list[list[str]]) -> list[str]:
    return [record_id for page in pages for record_id in page]


async def test_search_results_page_with_a_cursor_without_duplicates_or_misses(
    records_stack: RecordsStack, records_api: httpx.AsyncClient, records_owner: Account
) -> None:
    # Records alike but for a number: equal scores, so only the tie-break keeps pages apart.
    tied = [
        (await records_stack.create(records_api, records_owner, content=f"预算 budget 第{n}号"))["id"] for n in range(7)
    ]
    best = (await records_stack.create(records_api, records_owner, title="预算 budget", content="预算 budget"))["id"]
    await records_stack.create(records_api, records_owner, content="无关 unrelated")
    whole = [hit["record"]["id"] for hit in await hits(records_api, records_owner, "预算 budget", limit=100)]

    pages, cursors = await search_pages(records_api, records_owner, "预算 budget", limit=3)

    assert [len(page) for page in pages] == [3, 3, 2]
    flat = [record_id for page in pages for record_id in page]
    assert flat == whole  # the same order as one big page: none repeated, none missed
    assert sorted(flat) == sorted([*tied, best]) and flat[0] == best
    assert len(set(cursors)) == len(cursors)
    for cursor in cursors:  # opaque: nothing of the query or the owner in it
        assert "预算" not in cursor and "budget" not in cursor and records_owner.id not in cursor
    # A full last page ends with a null cursor too, not with an empty page after it.
    pages, _ = await search_pages(records_api, records_owner, "预算 budget", limit=4)
    assert [len(page) for page in pages] == [4, 4]
    # The page size may change between pages: the cursor says where the next page starts.
    first = (
        await records_api.get(SEARCH, params={"q": "预算 budget", "limit": 2}, headers=records_owner.headers)
    ).json()
    response = await records_api.get(
        SEARCH, params={"q": "预算 budget", "limit": 100, "cursor": first["next_cursor"]}, headers=records_owner.headers
    )
    assert [h["record"]["id"] for h in first["items"] + response.json()["items"]] == whole


async def test_search_pages_keep_their_filters(
    records_stack: RecordsStack, search_api: httpx.AsyncClient, records_owner: Account
) -> None:
    async def make(kind: str, tags: list[str]) -> str:
        return (await records_stack.create(search_api, records_owner, kind=kind, content="雨天 rain", tags=tags))["id"]

    diaries = {await make("diary", ["home", "walk"]) for _ in range(3)}
    notes = {await make("note", ["home"]) for _ in range(2)}
    todos = {await make("todo", ["home", "walk"]) for _ in range(2)}

    pages, cursors = await search_pages(search_api, records_owner, "雨天", kind=["diary", "todo"], limit=2)
    assert [len(page) for page in pages] == [2, 2, 1]
    assert set(flat(pages)) == diaries | todos
    pages, _ = await search_pages(search_api, records_owner, "rain", tag=["home", "walk"], limit=2)
    assert set(flat(pages)) == diaries | todos and len(flat(pages)) == 5
    pages, _ = await search_pages(search_api, records_owner, "rain", tag=["home"], kind=["note"], limit=1)
    assert flat(pages) == [*sorted(notes, reverse=True)] and len(pages) == 2

    # A cursor answers only for the search it came from: other filters, another query.
    headers = records_owner.headers
    for params in ({"kind": "diary"}, {"kind": ["todo", "diary"], "tag": "walk"}, {}):
        response = await search_api.get(SEARCH, params={"q": "雨天", "cursor": cursors[0], **params}, headers=headers)
        detail = assert_error(response, 422, "validation_error")
        assert [problem["field"] for problem in detail] == ["query.cursor"]  # type: ignore[attr-defined]
    response = await search_api.get(SEARCH, params={"q": "rain", "cursor": cursors[0]}, headers=headers)
    assert_error(response, 422, "validation_error")
    # The same kinds in another order, or repeated, are the same search.
    response = await search_api.get(
        SEARCH, params={"q": "雨天", "kind": ["todo", "diary", "todo"], "cursor": cursors[0]}, headers=headers
    )
    assert response.status_code == 200, response.text


async def test_bad_search_cursors_are_422_and_another_users_reveals_nothing(
    records_stack: RecordsStack, search_api: httpx.AsyncClient, records_owner: Account, records_stranger: Account
) -> None:
    for n in range(3):
        await records_stack.create(search_api, records_owner, content=f"secret 预算 {n}")
        await records_stack.create(search_api, records_stranger, content=f"secret 预算 theirs {n}")
    first = (await search_api.get(SEARCH, params={"q": "预算", "limit": 1}, headers=records_owner.headers)).json()
    cursor = first["next_cursor"]
    assert cursor

    # The stranger, holding the owner's cursor for the very same query, gets no page at all.
    response = await search_api.get(SEARCH, params={"q": "预算", "cursor": cursor}, headers=records_stranger.headers)
    detail = assert_error(response, 422, "validation_error")
    assert "secret" not in response.text and records_owner.id not in response.text
    assert [problem["field"] for problem in detail] == ["query.cursor"]  # type: ignore[attr-defined]

    def forged(payload: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")

    decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    for bad in (
        "garbage!",
        "bm90LWpzb24",  # "not-json"
        forged([1, decoded["s"]]),
        forged({"o": 0, "s": decoded["s"]}),
        forged({"o": -1, "s": decoded["s"]}),
        forged({"o": "1", "s": decoded["s"]}),
        forged({"o": 1.5, "s": decoded["s"]}),
        forged({"o": True, "s": decoded["s"]}),
        forged({"o": 1000, "s": decoded["s"]}),  # past the depth search pages to
        forged({"o": 1, "s": "someone-else"}),
        forged({"o": 1}),
        "x" * 201,
    ):
        response = await search_api.get(SEARCH, params={"q": "预算", "cursor": bad}, headers=records_owner.headers)
        assert_error(response, 422, "validation_error")
    # The cursor itself still works for its owner, and the pages end.
    pages, _ = await search_pages(search_api, records_owner, "预算", limit=1)
    assert len(pages) == 3 and all(len(page) == 1 for page in pages)


# -- search() itself: match_any (chat grounding) and ai_allowed_only -----------------------


async def search_ids(
    records_stack: RecordsStack,
    account: Account,
    query: str,
    *,
    limit: int = 10,
    match_any: bool = False,
    filters: SearchFilters | None = None,
) -> list[str]:
    """`search()` called directly (the HTTP API has no match_any): the ids in result order."""
    async with records_stack.sessionmaker() as session:
        results = await search(
            session, account.id, query, limit=limit, filters=filters or SearchFilters(), match_any=match_any
        )
    return [record.id for record, _, _ in results]


MIXED_QUERY = "预算 广告 marketing"


async def test_match_any_ranks_by_how_many_words_a_record_has(
    records_stack: RecordsStack, search_api: httpx.AsyncClient, records_owner: Account
) -> None:
    async def make(content: str, title: str | None = None) -> str:
        return (await records_stack.create(search_api, records_owner, title=title, content=content))["id"]

    # The fewer words, the newer, the more often repeated and the more in the title, so the
    # better ranked by bm25 and ts_rank alone: only counting the words puts them in order.
    three = await make("下季度预算与广告投放的 marketing 计划，写得很长很长，" + "细节很多。" * 20)
    two = await make("预算 广告 " * 15, title="预算 广告")
    one_en = await make("marketing " * 30, title="marketing")
    one_zh = await make("预算 " * 30, title="预算")
    zero = await make("咖啡机 coffee 周末")

    results = await search_ids(records_stack, records_owner, MIXED_QUERY, match_any=True)
    assert results[:2] == [three, two]
    assert set(results[2:]) == {one_en, one_zh}
    assert zero not in results
    assert await search_ids(records_stack, records_owner, MIXED_QUERY) == [three]


async def test_match_any_returns_only_every_word_records_when_they_fill_the_limit(
    records_stack: RecordsStack, search_api: httpx.AsyncClient, records_owner: Account
) -> None:
    async def make(content: str, **fields: Any) -> str:
        return (await records_stack.create(search_api, records_owner, content=content, **fields))["id"]

    every = {await make("预算 广告 marketing 一"), await make("预算 广告 marketing 二")}
    partial_best = await make("预算 广告")
    for content in ("预算", "广告", "marketing", "预算 marketing"):
        await make(content)

    assert set(await search_ids(records_stack, records_owner, MIXED_QUERY, limit=2, match_any=True)) == every
    assert set(await search_ids(records_stack, records_owner, MIXED_QUERY, limit=1, match_any=True)) < every
    # One short of the limit: the best partial record fills the last place.
    results = await search_ids(records_stack, records_owner, MIXED_QUERY, limit=3, match_any=True)
    assert set(results[:2]) == every
    assert results[2] == partial_best  # two of three words beats every one-word record

    # An opted-out every-word record does not count toward filling the limit under ai_allowed_only.
    opted_out = await make("预算 广告 marketing 三", ai_opt_out=True)
    allowed_only = SearchFilters(ai_allowed_only=True)
    results = await search_ids(records_stack, records_owner, MIXED_QUERY, limit=3, match_any=True, filters=allowed_only)
    assert opted_out not in results
    assert set(results[:2]) == every
    assert results[2] == partial_best


async def test_ai_allowed_only_leaves_out_opted_out_records(
    records_stack: RecordsStack, search_api: httpx.AsyncClient, records_owner: Account
) -> None:
    allowed = (await records_stack.create(search_api, records_owner, content="预算 广告 marketing 公开"))["id"]
    opted_out = (
        await records_stack.create(search_api, records_owner, content="预算 广告 marketing 私密", ai_opt_out=True)
    )["id"]
    partial = (await records_stack.create(search_api, records_owner, content="预算 广告"))["id"]
    allowed_only = SearchFilters(ai_allowed_only=True)

    for match_any in (False, True):
        results = await search_ids(records_stack, records_owner, MIXED_QUERY, match_any=match_any, filters=allowed_only)
        assert opted_out not in results, match_any
        assert allowed in results, match_any
    assert await search_ids(records_stack, records_owner, MIXED_QUERY, filters=allowed_only) == [allowed]
    assert await search_ids(records_stack, records_owner, MIXED_QUERY, match_any=True, filters=allowed_only) == [
        allowed,
        partial,
    ]
    # The default filters keep it: the offline provider and the search page may see it.
    assert set(await search_ids(records_stack, records_owner, MIXED_QUERY)) == {allowed, opted_out}
    assert set(await search_ids(records_stack, records_owner, MIXED_QUERY, match_any=True)) == {
        allowed,
        opted_out,
        partial,
    }


async def test_match_any_never_crosses_users(
    records_stack: RecordsStack, search_api: httpx.AsyncClient, records_owner: Account, records_stranger: Account
) -> None:
    mine_every = (await records_stack.create(search_api, records_owner, content="预算 广告 marketing 我的"))["id"]
    mine_partial = (await records_stack.create(search_api, records_owner, content="marketing 我的"))["id"]
    theirs = {
        (await records_stack.create(search_api, records_stranger, content=f"预算 广告 marketing 他们的{n}"))["id"]
        for n in range(3)
    }

    # The stranger's every-word records neither appear nor count toward filling the limit.
    for limit in (2, 10):
        results = await search_ids(records_stack, records_owner, MIXED_QUERY, limit=limit, match_any=True)
        assert results == [mine_every, mine_partial], limit
        assert not theirs & set(results)
    assert set(await search_ids(records_stack, records_stranger, MIXED_QUERY, match_any=True)) == theirs


# -- one statement per shape ---------------------------------------------------------------


async def test_searches_of_one_shape_each_take_their_own_values(
    records_stack: RecordsStack, search_api: httpx.AsyncClient, records_owner: Account, records_stranger: Account
) -> None:
    """A search's statement is built once per shape (how many words, the limit, which filters)
    and reused: owners, words and filter values are its parameters, never left over from the
    search before."""

    async def make(account: Account, content: str, **fields: Any) -> str:
        return (await records_stack.create(search_api, account, content=content, **fields))["id"]

    diary_june = await make(records_owner, "雨天 散步", kind="diary", tags=["家"], occurred_at="2026-06-01T08:00:00Z")
    note_july = await make(records_owner, "雨天 读书", kind="note", tags=["书"], occurred_at="2026-07-01T08:00:00Z")
    theirs = await make(records_stranger, "雨天 散步", kind="diary", tags=["家"], occurred_at="2026-06-01T08:00:00Z")

    async def found(account: Account, q: str, **params: str) -> set[str]:
        response = await search_api.get(SEARCH, params={"q": q, **params}, headers=account.headers)
        assert response.status_code == 200, response.text
        return {hit["record"]["id"] for hit in response.json()["items"]}

    # The same shape again and again, each time with other values.
    assert await found(records_owner, "雨天", kind="diary") == {diary_june}
    assert await found(records_owner, "雨天", kind="note") == {note_july}
    assert await found(records_stranger, "雨天", kind="diary") == {theirs}
    assert await found(records_owner, "雨天", tag="书") == {note_july}
    assert await found(records_owner, "雨天", tag="家") == {diary_june}
    assert await found(records_owner, "散步") == {diary_june}
    assert await found(records_owner, "读书") == {note_july}
    assert await found(records_stranger, "读书") == set()
    june = {"from": "2026-06-01T00:00:00Z", "to": "2026-06-30T00:00:00Z"}
    july = {"from": "2026-07-01T00:00:00Z", "to": "2026-07-31T00:00:00Z"}
    assert await found(records_owner, "雨天", **june) == {diary_june}
    assert await found(records_owner, "雨天", **july) == {note_july}
    assert await found(records_stranger, "雨天", **july) == set()
    # And the list page, whose filters are the same bound conditions.
    listed = await search_api.get(RECORDS, params={"kind": "note", **july}, headers=records_owner.headers)
    assert [item["id"] for item in listed.json()["items"]] == [note_july]


async def test_ranked_records_without_attachments_never_loads_them(
    records_stack: RecordsStack, search_api: httpx.AsyncClient, records_owner: Account
) -> None:
    made = (await records_stack.create(search_api, records_owner, content="预算 会议"))["id"]
    async with records_stack.sessionmaker() as session:
        terms = parse_query("预算")
        ((record, _),) = await ranked_records(session, records_owner.id, terms, limit=5, with_attachments=False)
        assert record.id == made
        with pytest.raises(InvalidRequestError):
            _ = record.attachments
        ((record, _),) = await ranked_records(session, records_owner.id, terms, limit=5)
        assert record.attachments == []
