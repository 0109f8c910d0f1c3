"""A word in more records than a page: on SQLite search reads only the matches that can make
the page (those ranked at the page's last place or better, ties included), so paging through
a common word must still show every match exactly once, best first, equal scores newest id
first — the same order as ranking every match. On PostgreSQL the same pages, as a contract."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from sqlalchemy import text

from common.records.search import owner_token, search
from tests.records.conftest import Account, RecordsStack
from tests.records.test_records_search import SEARCH, flat, search_pages

WORD = "周末"


async def make_common_word_records(records_stack: RecordsStack, owner: Account) -> list[str]:
    """28 records with `WORD`, in groups of equal scores and of scores of their own."""
    client = records_stack.mobile

    async def make(**fields: Any) -> str:
        return (await records_stack.create(client, owner, **fields))["id"]

    made = [await make(content=f"{WORD} 天气 不错") for _ in range(12)]  # all alike: one score
    made += [await make(content=f"{WORD} " + "散步 " * n) for n in range(1, 9)]  # longer, lower
    made += [await make(title=WORD, content=f"计划 第{n}天") for n in range(4)]  # in the title: higher
    made += [await make(content=f"{WORD} 聚餐 {WORD}") for _ in range(4)]  # twice, and a second word
    await make(content="工作日 加班")  # no match
    return made


async def test_a_common_word_pages_through_every_match_once_in_rank_order(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    made = await make_common_word_records(records_stack, records_owner)
    response = await records_stack.mobile.get(SEARCH, params={"q": WORD, "limit": 100}, headers=records_owner.headers)
    whole = response.json()["items"]
    ids = [hit["record"]["id"] for hit in whole]
    assert sorted(ids) == sorted(made)
    for better, worse in pairwise(whole):
        assert (better["score"], better["record"]["id"]) > (worse["score"], worse["record"]["id"])

    # Pages of 1 cut inside every group of equal scores; of 5, across groups.
    for limit in (1, 3, 5):
        pages, _ = await search_pages(records_stack.mobile, records_owner, WORD, limit=limit)
        assert flat(pages) == ids, limit
        assert all(len(page) == limit for page in pages[:-1])

    async with records_stack.sessionmaker() as session:
        if session.get_bind().dialect.name != "sqlite":
            return
        # What ranking every match gives, straight from FTS5: the same records, scores and order.
        every_match = text(
            "SELECT record_id, -bm25(record_search, 0.0, 0.0, 4.0, 1.0) AS score FROM record_search"
            " WHERE record_search MATCH :q ORDER BY score DESC, record_id DESC"
        )
        query = f'owner_id : "{owner_token(records_owner.id)}" AND "{WORD}"'
        ranked = (await session.execute(every_match, {"q": query})).all()
    assert [(record_id, score) for record_id, score in ranked] == [(hit["record"]["id"], hit["score"]) for hit in whole]


async def test_match_any_pages_of_a_common_word_add_up_to_the_whole_ranking(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    """match_any (chat grounding) orders by how many words first: its pages too are slices
    of one order, whether the records with both words fill the page (4 of them) or not, and
    although records with only the rarer word rank above them by score alone."""
    made = await make_common_word_records(records_stack, records_owner)
    for _ in range(2):
        made.append(
            (await records_stack.create(records_stack.mobile, records_owner, title="聚餐", content="聚餐"))["id"]
        )
    query = f"{WORD} 聚餐"

    async def ranked(limit: int, offset: int = 0) -> list[tuple[str, float]]:
        async with records_stack.sessionmaker() as session:
            found = await search(session, records_owner.id, query, limit=limit, offset=offset, match_any=True)
        return [(record.id, score) for record, score, _ in found]

    whole = await ranked(100)
    ids = [record_id for record_id, _ in whole]
    assert sorted(ids) == sorted(made)
    assert set(ids[:4]) == set(made[-6:-2]) and set(ids[4:6]) == set(made[-2:])  # both words, then the rarer
    assert min(score for _, score in whole[4:6]) > max(score for _, score in whole[:4])
    for limit in (1, 3, 4):
        pages = [await ranked(limit, offset) for offset in range(0, len(whole), limit)]
        assert [record_id for page in pages for record_id, _ in page] == ids, limit
