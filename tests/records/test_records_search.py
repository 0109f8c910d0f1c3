"""Search on SQLite (FTS5) and PostgreSQL (tsvector): Chinese words of two to four characters,
English words and prefixes, mixed queries, ranking, highlights, filters, and an index that
follows every edit and delete and never crosses users."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.records.conftest import RECORDS, Account, RecordsStack
from tests.support import assert_error

SEARCH = "/api/v1/search"


async def hits(client: httpx.AsyncClient, account: Account, q: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(SEARCH, params={"q": q, **params}, headers=account.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    for hit in body["items"]:
        assert set(hit) == {"record", "score", "highlight"}
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
