"""Issue 11's search benchmark: `common.records.search` on 100,000 records of one owner, in
this process (no launcher, no Redis), beside a naive LIKE search on the same database.

- Corpus: 100,000 generated diary-like records of one owner (Chinese phrases with English
  words among them, from `bench.records`' word lists), written straight into a migrated
  SQLite database with `segment_for_index` for the index rows.
- Mixed queries: 200 (40 each: Chinese words of 2, 3 and 4 characters, English words,
  mixed; a few match nothing) through `search(session, owner, q, limit=20)` (parsing,
  ranking, loading the records and their attachments, highlighting; the app's engine and
  pragmas): p50 and p95 of the wall time, and of the process's CPU time (the machine may be
  shared, which stretches the wall time but hardly the CPU time). Target p95 < 25 ms.
- Common words: Chinese words of two characters that most records contain (10,000 to
  16,000 matches, and 35,000 to 40,000), each searched `COMMON_ROUNDS` times: p95 per band,
  the same target.
- Beside each search, the same query two naive ways through the same kind of session: the
  newest 20 live records whose content contains every word (`LIKE '%word%'`, which stops
  once it has 20), and a count of all such records (the scan that ranking every match
  would need). Ratio = median over queries of (LIKE time ÷ search time): above 1, search
  is the faster.
- Also timed: `search.index_record` for one record on that database, which every create,
  edit and delete runs.

`python -m bench search` runs it alone. `JILU_BENCH_SEARCH_DB=path` keeps the corpus in that
file and reuses it on the next run (building it takes about a minute); `JILU_BENCH_SEARCH_RECORDS`
makes a smaller one while developing (the targets are for 100,000).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import Row
from bench.records import _connect, _segmented, _stored_time, bulk_insert, drafts
from common.database.ids import new_id

SEARCH_RECORDS = int(os.environ.get("JILU_BENCH_SEARCH_RECORDS", "100000"))
SEARCH_QUERIES = 200
SEARCH_LIMIT = 20
SEARCH_P95_TARGET_MS = 25.0
COMMON_ROUNDS = 6
USERNAME = "search"

QUERIES = {
    "zh2": (
        "开会 预算 咖啡 跑步 周报 电影 天气 加班 医院 快递 面试 火锅 发票 合同 护照 钥匙 瑜伽 游泳 钢琴 简历 论文 "
        "搬家 遛狗 蛋糕 机票 报告 雨伞 礼物 房租 量子"
    ).split(),
    "zh3": (
        "图书馆 星巴克 健身房 会议室 火锅店 咖啡店 羽毛球 自行车 动物园 充电器 咖啡豆 预算表 实验室 信用卡 候选人 "
        "数据库 洗衣服 博物馆"
    ).split(),
    "zh4": (
        "项目进度 产品设计 心情不错 机器学习 年终总结 读书笔记 旅行计划 线上故障 会议纪要 体检报告 年度计划 性能问题 "
        "英语单词 阳光明媚 充满期待 生日礼物 上线流程 量子力学"
    ).split(),
    "en": (
        "budget meeting deadline coffee review project design deploy weekend python release sprint feedback "
        "interview roadmap database kubernetes invoice podcast birthday docker github conference monday friday zebra"
    ).split(),
    "mixed": [
        "预算 budget",
        "开会 meeting",
        "咖啡 coffee",
        "跑步 weekend",
        "周报 report",
        "面试 interview",
        "代码 review",
        "上线 deploy",
        "火锅 dinner",
        "机票 flight",
        "健身房 gym",
        "项目进度 deadline",
        "python 学习",
        "读书笔记 journal",
        "sprint 复盘",
        "数据库 backup",
    ],
}
# Two-character words in most records of the corpus, by how many they are in.
COMMON_WORDS = {
    "10k-16k matches": "今天 同事 学习 生活 工作 下午".split(),
    "35k-40k matches": "还没 问题 事情".split(),
}


def _log(message: str) -> None:
    print(f"bench: search: {message}", file=sys.stderr, flush=True)


def queries() -> list[str]:
    """`SEARCH_QUERIES` queries, as many of each kind, each list cycled."""
    per_kind = SEARCH_QUERIES // len(QUERIES)
    return [words[i % len(words)] for words in QUERIES.values() for i in range(per_kind)]


def _build_database(database: Path) -> str:
    """A migrated database with one owner's `SEARCH_RECORDS` records; the owner's id."""
    from common.database.migrate import upgrade_to_head

    upgrade_to_head(f"sqlite+aiosqlite:///{database}")
    owner_id = new_id()
    connection = _connect(database)
    try:
        now = _stored_time(datetime.now(UTC))
        connection.execute(
            "INSERT INTO users (id, username, username_key, password_hash, role, is_active, language, time_zone,"
            " created_at, updated_at) VALUES (?, ?, ?, '-', 'user', 1, 'zh-CN', 'Asia/Shanghai', ?, ?)",
            (owner_id, USERNAME, USERNAME, now, now),
        )
        connection.execute("PRAGMA synchronous=OFF")  # building only; measured with the app's pragmas
        started = time.perf_counter()
        for first, batch, texts in _segmented(list(drafts(SEARCH_RECORDS, seed=3))):
            bulk_insert(connection, owner_id, batch, first, texts)
            done = first + len(batch) - 1
            if done % 20_000 == 0 or done == SEARCH_RECORDS:
                _log(f"corpus: {done:,}/{SEARCH_RECORDS:,} records, {time.perf_counter() - started:.0f} s")
        connection.execute("PRAGMA optimize")
        return owner_id
    finally:
        connection.close()


def _kept_owner(database: Path) -> str | None:
    """The owner of a corpus kept from an earlier run, if it has `SEARCH_RECORDS` records."""
    if not database.exists():
        return None
    with sqlite3.connect(database) as connection:
        found = connection.execute(
            "SELECT users.id, (SELECT count(*) FROM records WHERE owner_id = users.id) FROM users WHERE username = ?",
            (USERNAME,),
        ).fetchone()
    return found[0] if found and found[1] == SEARCH_RECORDS else None


@dataclass
class Timings:
    """One list per measure, one entry per query, in the order of the queries."""

    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    like_newest_ms: list[float] = field(default_factory=list)
    like_scan_ms: list[float] = field(default_factory=list)
    hits: list[int] = field(default_factory=list)
    matches: list[int] = field(default_factory=list)


@dataclass
class SearchTimes:
    mixed: Timings = field(default_factory=Timings)
    common: dict[str, Timings] = field(default_factory=dict)
    reindex_ms: list[float] = field(default_factory=list)


async def _time_queries(database: Path, owner_id: str, texts: list[str]) -> SearchTimes:
    from sqlalchemy import func, select, text

    from common.database import create_engine, create_sessionmaker
    from common.records import search
    from common.records.models import Record
    from common.records.repository import owned_records

    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    sessions = create_sessionmaker(engine)
    times = SearchTimes()

    def containing(query: str) -> list[Any]:
        return [Record.content.contains(word, autoescape=True) for word in query.split()]

    async def like_newest(session: Any, query: str) -> list[Record]:
        """The naive search: the newest records containing every word of the query."""
        statement = owned_records(owner_id).where(*containing(query))
        statement = statement.order_by(Record.occurred_at.desc()).limit(SEARCH_LIMIT)
        return list((await session.execute(statement)).scalars())

    async def like_scan(session: Any, query: str) -> int:
        """Every record looked at, as ranking all matches needs: how many contain the words."""
        statement = select(func.count()).select_from(owned_records(owner_id).where(*containing(query)).subquery())
        return int((await session.execute(statement)).scalar_one())

    def ranked(session: Any, query: str) -> Awaitable[Any]:
        return search.search(session, owner_id, query, limit=SEARCH_LIMIT)

    async def timed(call: Callable[[Any, str], Awaitable[Any]], query: str) -> tuple[Any, float, float]:
        async with sessions() as session:
            wall, cpu = time.perf_counter(), time.process_time()
            result = await call(session, query)
            return result, (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000

    async def measure(query: str, into: Timings) -> None:
        hits, wall_ms, cpu_ms = await timed(ranked, query)
        into.wall_ms.append(wall_ms)
        into.cpu_ms.append(cpu_ms)
        into.hits.append(len(hits))
        into.like_newest_ms.append((await timed(like_newest, query))[1])
        into.like_scan_ms.append((await timed(like_scan, query))[1])
        terms = search.parse_query(query)
        async with sessions() as session:
            count = text("SELECT count(*) FROM record_search WHERE record_search MATCH :q")
            found = (await session.execute(count, {"q": search._fts5_query(terms)})).scalar_one() if terms else 0
            into.matches.append(int(found))

    try:
        for query in texts[:20]:  # warm-up: the page cache, jieba, SQLAlchemy's statement cache
            for call in (ranked, like_newest, like_scan):
                await timed(call, query)
        for query in texts:
            await measure(query, times.mixed)
        for band, words in COMMON_WORDS.items():
            times.common[band] = Timings()
            for _ in range(COMMON_ROUNDS):
                for word in words:
                    await measure(word, times.common[band])

        # What every create, edit and delete pays to keep an index of this size in step.
        for _ in range(5):
            async with sessions() as session:
                record = (await session.execute(owned_records(owner_id).limit(1))).scalar_one()
                started = time.perf_counter()
                await search.index_record(session, record)
                times.reindex_ms.append((time.perf_counter() - started) * 1000)
                await session.rollback()
    finally:
        await engine.dispose()
    return times


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _ratio(like_ms: list[float], search_ms: list[float]) -> str:
    ratio = statistics.median(like / found for like, found in zip(like_ms, search_ms, strict=True))
    return f"{ratio:.2f}x (LIKE p50 {_percentile(like_ms, 0.5):.1f} ms, p95 {_percentile(like_ms, 0.95):.1f} ms)"


def _p95_row(name: str, timings: Timings) -> Row:
    p95 = _percentile(timings.wall_ms, 0.95)
    measured = f"{p95:.1f} ms (CPU {_percentile(timings.cpu_ms, 0.95):.1f} ms)"
    return Row(name, measured, f"< {SEARCH_P95_TARGET_MS:g} ms", p95 < SEARCH_P95_TARGET_MS)


def _rows(times: SearchTimes, texts: list[str], corpus: str) -> list[Row]:
    mixed = times.mixed
    per_kind = SEARCH_QUERIES // len(QUERIES)
    kinds = [kind for kind in QUERIES for _ in range(per_kind)]
    for kind in QUERIES:
        ms = [t for t, k in zip(mixed.wall_ms, kinds, strict=True) if k == kind]
        found = [m for m, k in zip(mixed.matches, kinds, strict=True) if k == kind]
        _log(
            f"{kind}: p50 {_percentile(ms, 0.5):.1f} ms, p95 {_percentile(ms, 0.95):.1f} ms, "
            f"median {statistics.median(found):.0f} matches"
        )
    slowest = sorted(zip(mixed.wall_ms, texts, mixed.matches, strict=True), reverse=True)[:5]
    _log("slowest searches: " + ", ".join(f"{q} {ms:.0f} ms ({m} matches)" for ms, q, m in slowest))
    empty = sum(1 for n in mixed.hits if n == 0)
    p50 = _percentile(mixed.wall_ms, 0.5)
    rows = [
        Row(
            f"search p50, {corpus}, {len(texts)} mixed queries",
            f"{p50:.1f} ms, CPU {_percentile(mixed.cpu_ms, 0.5):.1f} ms (median "
            f"{statistics.median(mixed.matches):.0f} matches; {empty} queries find nothing)",
        ),
        _p95_row(f"search p95, {corpus}, mixed queries", mixed),
        Row("search ÷ LIKE newest 20, mixed (median per query)", _ratio(mixed.like_newest_ms, mixed.wall_ms)),
        Row("search ÷ LIKE every record, mixed (median per query)", _ratio(mixed.like_scan_ms, mixed.wall_ms)),
    ]
    for band, timings in times.common.items():
        words = COMMON_WORDS[band]
        # Measured round after round, so a word's times are every len(words)-th.
        medians = {word: statistics.median(timings.wall_ms[n :: len(words)]) for n, word in enumerate(words)}
        _log(f"common words, {band}: " + ", ".join(f"{w} {ms:.1f} ms" for w, ms in medians.items()))
        rows += [
            _p95_row(f"search p95, two-character words in {band}", timings),
            Row(f"search ÷ LIKE newest 20, {band} (median)", _ratio(timings.like_newest_ms, timings.wall_ms)),
        ]
    reindex = statistics.median(times.reindex_ms)
    return [*rows, Row(f"index one record, {corpus} (every write pays it)", f"{reindex:.1f} ms")]


def _load_average() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def run() -> list[Row]:
    before = _load_average()
    kept = os.environ.get("JILU_BENCH_SEARCH_DB")
    with tempfile.TemporaryDirectory(prefix="jilu-bench-search-") as tmp:
        database = Path(kept) if kept else Path(tmp) / "search.db"
        owner_id = _kept_owner(database) if kept else None
        corpus = "kept from a run before"
        if owner_id is None:
            started = time.perf_counter()
            database.unlink(missing_ok=True)
            owner_id = _build_database(database)
            corpus = f"built in {time.perf_counter() - started:.0f} s"
        texts = queries()
        times = asyncio.run(_time_queries(database, owner_id, texts))
    size = f"{SEARCH_RECORDS:,} records"
    machine = f"{os.cpu_count()} cores; load average (1/5/15 min) {before} before, {_load_average()} after"
    return [
        Row("search: machine", machine),
        Row(f"search corpus ({size}, one owner)", corpus),
        *_rows(times, texts, size),
    ]
