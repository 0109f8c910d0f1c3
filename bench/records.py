"""Issue 4's benchmarks: the record domain, each number beside a floor measured in the same run.

The load comes from a minimal HTTP/1.1 keep-alive client on asyncio streams (uvloop), one
connection per client: httpx at 32 connections tops out near 130 requests/s for a 27 KB
answer on a 2-core machine, which would cap the floors and flatter every ratio. Requests
answered with anything but success are counted (and shown), not retried; rates count the
successes.

1. List: `GET /api/v1/records?limit=50` on the real mobile_service (the real launcher with
   user and mobile, the per-user rate limit raised) from 32 concurrent clients, for an owner
   with 2,164 records (made by benchmark 2), one in ten with an attachment row. The floor
   is `bench/_records_floor.py`: a minimal Starlette app with the same uvicorn settings, in
   its own process, running the two statements the real route runs (the owner's live
   records by `occurred_at` desc, `id` desc, limit 51; their attachments) with raw
   aiosqlite (one connection: faster here than a pool of 4) on the same database file,
   answering the same JSON shape, with no authentication, rate limit, ORM or pydantic. The
   sides take turns, three rounds of 1,000 requests each; each side's best round counts
   (the machine may be shared). Target: mobile_service ÷ floor >= 0.5.
2. Create: `POST /api/v1/records` (kind, title, Markdown content, tags, occurred_at) from
   32 concurrent clients through mobile_service: authentication, rate limit, validation, a
   `BEGIN IMMEDIATE` transaction with the change number, the record, its tags and its
   jieba-segmented search row, the Redis event, the commit (the process's writers take turns
   at its one SQLite write connection: `common.database.engine.create_write_engine`). The
   floor is a raw aiosqlite loop, one record after another on one connection with the app's
   pragmas, on a copy of the database taken before the first record: per record `BEGIN
   IMMEDIATE`, the change number, the record, its tags, its search row (segmented the same
   way), `COMMIT`: the same rows, without HTTP, auth, ORM or Redis. Taking turns, three rounds of 700, best
   round each. Target: mobile_service ÷ raw loop >= 0.3, and no answer but 201 (a 503
   "database is busy" under this burst is a failure of its own row).
3. Search: in `bench/search.py` (`python -m bench search`), in one process.
4. Sync: a second user with 10,000 records (written straight into the live database with
   their change numbers) pages through `GET /api/v1/sync/changes?since=...&limit=500` on the
   real mobile_service from `since=0` until `has_more` is false, parsing each page as an app
   would, on one kept-alive connection. Median of 3 first syncs; target under 3 s.

`JILU_BENCH_RECORDS=list python -m bench records` runs the list benchmark alone, for
iterating on the read path: the owner's 2,164 records are written straight into the live
database (`bulk_insert`, the same drafts benchmark 2 would post) instead of through
`POST /records`, and benchmarks 2 and 4 are skipped.
"""

from __future__ import annotations

import asyncio
import collections
import json
import multiprocessing
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench import Row
from bench._launcher import LauncherProcess
from common.database.ids import new_id
from common.records.search import owner_token
from common.records.tags import normalise_tags
from tests.harness import Spawned, clean_env, free_ports

CONCURRENCY = 32
PASSWORD = "correct horse battery 9"
ROUNDS = 3

LIST_REQUESTS = 1000  # per round and side
LIST_WARM_UP = 128
LIST_RATIO_TARGET = 0.5
ATTACHMENT_SHARE = 10  # one record in ten gets an attachment row

CREATE_REQUESTS = 700  # per round and side: 2,100 records, the list benchmark's owner's
CREATE_WARM_UP = 64
CREATE_RATIO_TARGET = 0.3

BUILD_BATCH = 2_000
ONLY_ENV = "JILU_BENCH_RECORDS"  # "list": the list benchmark alone (see the docstring)

SYNC_RECORDS = 10_000
SYNC_PAGE = 500
SYNC_RUNS = 3
SYNC_TARGET_S = 3.0


def _log(message: str) -> None:
    print(f"bench: records: {message}", file=sys.stderr, flush=True)


# -- generated records ----------------------------------------------------------------------

ZH_WHEN = (
    "今天早上 今天上午 今天中午 今天下午 今天晚上 昨天晚上 昨天下午 前天 周一 周三晚上 周五下午 周末 上周末 "
    "凌晨 午饭后 下班后 早饭前 月底 国庆节 春节前 生日那天 出差途中 雨天 深夜"
).split()
ZH_WHO = ("", "", "和同事", "和朋友", "跟老板", "和家人", "一个人", "和室友", "和客户", "跟妈妈", "和团队", "跟导师")
ZH_WHERE = (
    ", 在会议室 在咖啡店 在图书馆 在公园 在家里 在星巴克 在地铁上 在健身房 在办公室 在火锅店 在机场 在高铁上 "
    "在医院 在超市 在书店 在海边 在实验室 在酒店 在食堂"
).split()
ZH_DOING = (
    "开会讨论预算 写代码 看书 跑步 做饭 整理项目进度 复习英语单词 讨论产品设计 散步 看电影 学习机器学习 准备周报 "
    "修复线上故障 面试候选人 写年终总结 做读书笔记 制定旅行计划 练习钢琴 打羽毛球 拍照片 收拾房间 洗衣服 逛超市 "
    "买菜 吃火锅 喝咖啡 聊天 加班 写日记 背单词 做瑜伽 游泳 骑自行车 画画 弹吉他 看展览 听播客 写论文 改简历 "
    "做实验 对账 报销发票 装修房子 看房子 带孩子去动物园 陪父母体检 准备考试 复盘上线流程 排查性能问题 设计数据库 "
    "评审代码 录制视频 剪辑视频 写博客 学做蛋糕 种花 遛狗 喂猫 搬家 订机票"
).split()
ZH_FEEL = (
    "心情不错 有点累 感觉很充实 压力很大 非常开心 效率很高 收获很多 有点焦虑 很放松 特别感动 有些失望 充满期待 "
    "困得不行 精神很好 觉得很满足 有点无聊 挺有意思的 十分紧张"
).split()
ZH_NOUNS = (
    "发票 快递 牛奶 水果 报告 合同 护照 钥匙 充电器 雨伞 车票 电费 房租 礼物 蛋糕 药 眼镜 简历 文件 方案 预算表 "
    "会议纪要 体检报告 信用卡账单 生日礼物 年度计划 周报 咖啡豆 自行车 耳机"
).split()
ZH_NOTE = ("记得明天交{n}", "{n}还没有处理完", "顺便买了{n}", "{n}的价格又涨了", "终于搞定了{n}", "下次要早点准备{n}")
ZH_WEATHER = "天气很好 下了一整天雨 雾霾很严重 阳光明媚 刮大风 特别冷 闷热 下雪了".split()
EN_WORDS = (
    "meeting budget deadline coffee review project design deploy weekend running python release sprint feedback "
    "dinner travel journal report interview roadmap standup demo bug refactor database kubernetes invoice flight "
    "hotel gym yoga podcast movie recipe birthday salary promotion workshop conference OKR email schedule launch "
    "backup server laptop iPhone GitHub Docker"
).split()
EN_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
TITLES = "周报 读书笔记 旅行计划 待办 随手记 会议纪要 今日总结 健身记录 灵感 购物清单".split()
TAGS = "工作 生活 家庭 健身 学习 旅行 读书 美食 电影 work ideas todo health finance".split()
KINDS = ("diary", "diary", "note", "note", "todo")


def _zh_sentence(rng: random.Random) -> str:
    shape = rng.randrange(6)
    en, en2 = rng.sample(EN_WORDS, 2)
    if shape == 0:
        who, where = rng.choice(ZH_WHO), rng.choice(ZH_WHERE)
        return f"{rng.choice(ZH_WHEN)}{who}{where}{rng.choice(ZH_DOING)}，{rng.choice(ZH_FEEL)}。"
    if shape == 1:
        return f"{rng.choice(ZH_WHEN)}{rng.choice(ZH_DOING)}，{en} {en2} 的事情还没搞定。"
    if shape == 2:
        return rng.choice(ZH_NOTE).format(n=rng.choice(ZH_NOUNS)) + f"，{rng.choice(ZH_WEATHER)}。"
    if shape == 3:
        return f"{rng.choice(ZH_WHO) or '和同事'}开了个 {en}，聊了{rng.choice(ZH_NOUNS)}和{rng.choice(ZH_NOUNS)}。"
    if shape == 4:
        return f"{rng.choice(ZH_DOING)}的时候想到 {en} 的问题，{rng.choice(ZH_FEEL)}。"
    return f"Quick note: {en} {en2} moved to {rng.choice(EN_DAYS)}. "


@dataclass(frozen=True)
class Draft:
    kind: str
    title: str | None
    content: str
    tags: list[str]
    occurred_at: datetime

    def body(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "content": self.content,
            "tags": self.tags,
            "occurred_at": self.occurred_at.isoformat(),
        }


def drafts(count: int, seed: int) -> Iterator[Draft]:
    """`count` diary-like records, the same ones for the same seed, spread over three years."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for _ in range(count):
        title = None
        if rng.random() < 0.4:
            title = rng.choice(TITLES) + (f" {rng.choice(EN_WORDS)}" if rng.random() < 0.3 else "")
        yield Draft(
            kind=rng.choice(KINDS),
            title=title,
            content="".join(_zh_sentence(rng) for _ in range(rng.randint(1, 4))),
            tags=rng.sample(TAGS, rng.randint(0, 3)),
            occurred_at=start + timedelta(seconds=rng.randrange(3 * 365 * 86400), microseconds=rng.randrange(10**6)),
        )


# -- writing records straight into SQLite ---------------------------------------------------

RECORD_COLUMNS = (
    "id owner_id kind title content tags occurred_at device_id version change_seq is_deleted deleted_at purged_at "
    "share_slug ai_opt_out ai_status ai_title ai_summary ai_tags ai_error push_fingerprint created_at updated_at"
).split()
INSERT_RECORD = f"INSERT INTO records ({', '.join(RECORD_COLUMNS)}) VALUES ({', '.join('?' * len(RECORD_COLUMNS))})"
INSERT_TAG = "INSERT INTO record_tags (id, record_id, owner_id, name) VALUES (?, ?, ?, ?)"
# The search index as common/records/search.py writes it on SQLite: the owner as one token,
# and each FTS row's rowid mapped from its record.
INSERT_SEARCH = "INSERT INTO record_search (record_id, owner_id, title, body) VALUES (?, ?, ?, ?)"
INSERT_SEARCH_ROWID = "INSERT INTO record_search_rowids (record_id, fts_rowid) VALUES (?, last_insert_rowid())"
NEXT_SEQ = (
    "INSERT INTO sync_counters (id, seq) VALUES (?, 1) ON CONFLICT (id) DO UPDATE SET seq = seq + 1 RETURNING seq"
)


def _stored_time(moment: datetime) -> str:
    """How SQLAlchemy keeps a UTC time in SQLite."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _record_row(record_id: str, owner_id: str, draft: Draft, seq: int, now: datetime) -> tuple[Any, ...]:
    tags = normalise_tags(draft.tags)
    values = {
        "id": record_id,
        "owner_id": owner_id,
        "kind": draft.kind,
        "title": draft.title,
        "content": draft.content,
        "tags": json.dumps(tags),
        "occurred_at": _stored_time(draft.occurred_at),
        "device_id": None,
        "version": 1,
        "change_seq": seq,
        "is_deleted": 0,
        "deleted_at": None,
        "purged_at": None,
        "share_slug": None,
        "ai_opt_out": 0,
        "ai_status": "pending",
        "ai_title": None,
        "ai_summary": None,
        "ai_tags": "[]",
        "ai_error": None,
        "push_fingerprint": None,
        "created_at": _stored_time(now),
        "updated_at": _stored_time(now),
    }
    return tuple(values[column] for column in RECORD_COLUMNS)


def _index_texts(draft: Draft) -> tuple[str, str]:
    """The search row's title and body, as `search.index_record` makes them."""
    from common.records.search import segment_for_index

    body = "\n".join([draft.content, " ".join(normalise_tags(draft.tags))])
    return segment_for_index(draft.title or ""), segment_for_index(body)


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def bulk_insert(
    connection: sqlite3.Connection,
    owner_id: str,
    batch: Sequence[Draft],
    first_seq: int,
    index_texts: Sequence[tuple[str, str]],
) -> None:
    """One transaction: the records, their tags, their search rows, the owner's counter."""
    now = datetime.now(UTC)
    ids = [new_id() for _ in batch]
    records = [_record_row(i, owner_id, d, first_seq + n, now) for n, (i, d) in enumerate(zip(ids, batch, strict=True))]
    tags = [(new_id(), i, owner_id, t) for i, d in zip(ids, batch, strict=True) for t in normalise_tags(d.tags)]
    owner = owner_token(owner_id)
    rows = [(i, owner, title, body) for i, (title, body) in zip(ids, index_texts, strict=True)]
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(INSERT_RECORD, records)
    connection.executemany(INSERT_TAG, tags)
    for row in rows:
        connection.execute(INSERT_SEARCH, row)
        connection.execute(INSERT_SEARCH_ROWID, (row[0],))
    last = first_seq + len(batch) - 1
    connection.execute(
        "INSERT INTO sync_counters (id, seq) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
        (owner_id, last),
    )
    connection.execute("COMMIT")


# -- HTTP load ------------------------------------------------------------------------------


def _register(base_url: str, username: str) -> tuple[str, dict[str, str]]:
    """A new user's id and bearer header."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        deadline = time.perf_counter() + 45
        while True:
            response = client.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD})
            # The first registration of an instance takes a 30 s lock in Redis, which another
            # instance on the same Redis database (an earlier run) may still hold: wait it out.
            if response.status_code != 409 or "being set up" not in response.text or time.perf_counter() > deadline:
                break
            time.sleep(1)
        response.raise_for_status()
        user_id = response.json()["id"]
        response = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
        response.raise_for_status()
        return user_id, {"Authorization": f"Bearer {response.json()['access_token']}"}


# What the n-th request of a round is: method, URL, body.
Request = Callable[[int], tuple[str, str, bytes]]


@dataclass
class Load:
    """What one round of load gave: answers as expected per second, and the other answers."""

    rate: float
    refused: collections.Counter[str] = field(default_factory=collections.Counter)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a kept-alive connection: the status and the body."""
    writer.write(head + body)
    header_block = await reader.readuntil(b"\r\n\r\n")
    length = None
    for line in header_block.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise RuntimeError(f"an answer without Content-Length: {header_block[:200]!r}")
    return int(header_block[9:12]), await reader.readexactly(length)


async def _load_round(headers: dict[str, str], request: Request, count: int, expected: int) -> Load:
    """`count` requests from `CONCURRENCY` clients, each on its own kept-alive connection.

    A minimal HTTP/1.1 client on asyncio streams rather than httpx: at 32 connections httpx
    itself tops out near 130 requests/s for a 27 KB answer on a 2-core machine, which would
    cap the floor and flatter the ratio. Unexpected answers are counted, not retried; the rate
    counts the expected ones."""
    result = Load(0.0)
    numbers = iter(range(count))
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())

    async def worker() -> None:
        url = httpx.URL(request(0)[1])
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            for n in numbers:
                method, target, body = request(n)
                path = httpx.URL(target).raw_path.decode()
                head = (
                    f"{method} {path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n{extra}"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                status, answer = await _exchange(reader, writer, head, body)
                if status != expected:
                    detail = f"{status} {answer[:80].decode(errors='replace')}"
                    if not result.refused:
                        _log(f"{method} {path} answered {detail}")
                    result.refused[detail] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    refused = sum(result.refused.values())
    if refused > count // 2:
        raise RuntimeError(f"{refused} of {count} requests failed: {dict(result.refused)}")
    result.rate = (count - refused) / elapsed
    return result


def _load(headers: dict[str, str], request: Request, count: int, expected: int) -> Load:
    """`_load_round` on its own uvloop event loop (the cheapest client this machine has)."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_load_round(headers, request, count, expected))


def _get(url: str) -> Request:
    return lambda _n: ("GET", url, b"")


def _post(url: str, bodies: Sequence[bytes]) -> Request:
    return lambda n: ("POST", url, bodies[n])


class FloorServer(Spawned):
    """`bench/_records_floor.py` in its own process on a free port, stopped on exit."""

    def __init__(self, database: Path, owner_id: str) -> None:
        port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "bench._records_floor", str(database), owner_id, str(port)]
        super().__init__("the floor app", command, clean_env(), keep_lines=200)

    def __enter__(self) -> FloorServer:
        try:
            self.wait_until_answers(self.url, timeout=60)
        except BaseException:
            self.close()
            raise
        return self


# -- 2. create: the floor -------------------------------------------------------------------


async def _floor_create(database: Path, owner_id: str, batch: Sequence[Draft]) -> float:
    """Records per second for a raw aiosqlite loop writing what a create writes."""
    import aiosqlite

    from common.database.engine import SQLITE_PRAGMAS

    async with aiosqlite.connect(database, isolation_level=None) as connection:
        for pragma in SQLITE_PRAGMAS:
            await connection.execute(pragma)
        started = time.perf_counter()
        for draft in batch:
            now = datetime.now(UTC)
            record_id = new_id()
            await connection.execute("BEGIN IMMEDIATE")
            seq = (await (await connection.execute(NEXT_SEQ, (owner_id,))).fetchone())[0]  # type: ignore[index]
            await connection.execute(INSERT_RECORD, _record_row(record_id, owner_id, draft, seq, now))
            tags = normalise_tags(draft.tags)
            if tags:
                await connection.executemany(INSERT_TAG, [(new_id(), record_id, owner_id, t) for t in tags])
            await connection.execute(INSERT_SEARCH, (record_id, owner_token(owner_id), *_index_texts(draft)))
            await connection.execute(INSERT_SEARCH_ROWID, (record_id,))
            await connection.execute("COMMIT")
        return len(batch) / (time.perf_counter() - started)


# -- 1, 2, 4 on the real launcher -----------------------------------------------------------


def _copy_database(source: Path, target: Path) -> None:
    with _connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def _add_attachment_rows(database: Path, owner_id: str) -> int:
    """An attachment row on every tenth record of the owner (rows only: listing reads no files)."""
    connection = _connect(database)
    try:
        ids = [
            row[0] for row in connection.execute("SELECT id FROM records WHERE owner_id = ? ORDER BY id", (owner_id,))
        ]
        now = _stored_time(datetime.now(UTC))
        rows = [
            (new_id(), owner_id, record_id, f"photo-{n}.jpg", "image/jpeg", 123_456, f"{n:064x}", 1, now)
            for n, record_id in enumerate(ids[::ATTACHMENT_SHARE])
        ]
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO attachments (id, owner_id, record_id, filename, content_type, size, sha256, has_thumbnail,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        connection.execute("COMMIT")
        return len(rows)
    finally:
        connection.close()


def _seed_sync_owner(database: Path, owner_id: str) -> None:
    connection = _connect(database)
    try:
        for first, batch, texts in _segmented(list(drafts(SYNC_RECORDS, seed=4))):
            bulk_insert(connection, owner_id, batch, first, texts)
    finally:
        connection.close()


def _first_sync(base_url: str, headers: dict[str, str]) -> tuple[float, int, int]:
    """Seconds to page through the whole feed from 0, the records seen and the pages."""
    seen = pages = 0
    since = 0
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        client.get("/health").raise_for_status()  # the connection is open before the clock starts
        started = time.perf_counter()
        while True:
            response = client.get("/api/v1/sync/changes", params={"since": since, "limit": SYNC_PAGE})
            response.raise_for_status()
            page = response.json()
            seen += len(page["changes"])
            pages += 1
            since = page["cursor"]
            if not page["has_more"]:
                break
        return time.perf_counter() - started, seen, pages


def _service_benchmarks(tmp: Path) -> list[Row]:
    env = {
        "JILU_RATE_USER": "100000000/minute",
        "JILU_RATE_LOGIN_ADDRESS": "1000/minute",
        "JILU_RATE_REGISTER_ADDRESS": "1000/minute",
    }
    data_dir = tmp / "data"
    database = data_dir / "jilu.db"
    with LauncherProcess(data_dir, services=("user", "mobile"), extra_env=env) as jilu:
        _log(f"launcher up after {jilu.wait_up(120):.1f} s (Redis: {jilu.redis_description})")
        user, mobile = jilu.url("user"), jilu.url("mobile")
        owner_id, headers = _register(user, "bench_records")
        if os.environ.get(ONLY_ENV) == "list":
            connection = _connect(database)
            try:
                for first, seeded_batch, texts in _segmented(
                    list(drafts(CREATE_WARM_UP + ROUNDS * CREATE_REQUESTS, seed=2))
                ):
                    bulk_insert(connection, owner_id, seeded_batch, first, texts)
            finally:
                connection.close()
            _log(f"list only ({ONLY_ENV}=list): {_add_attachment_rows(database, owner_id)} attachment rows")
            return _list_benchmark(database, mobile, owner_id, headers)
        sync_owner_id, sync_headers = _register(user, "bench_sync")

        # 2. create, taking turns with the floor on a copy made before the first record.
        floor_db = tmp / "floor-create.db"
        _copy_database(database, floor_db)
        batch = list(drafts(CREATE_WARM_UP + ROUNDS * CREATE_REQUESTS, seed=2))
        bodies = [json.dumps(d.body(), ensure_ascii=False).encode() for d in batch]
        creates = f"{mobile}/api/v1/records"
        _index_texts(batch[0])  # jieba's dictionary loads here, not in the first round
        _load(headers, _post(creates, bodies[:CREATE_WARM_UP]), CREATE_WARM_UP, 201)
        asyncio.run(_floor_create(floor_db, owner_id, batch[:CREATE_WARM_UP]))
        api_create: list[Load] = []
        floor_create: list[float] = []
        for n in range(ROUNDS):
            part = slice(CREATE_WARM_UP + n * CREATE_REQUESTS, CREATE_WARM_UP + (n + 1) * CREATE_REQUESTS)
            api_create.append(_load(headers, _post(creates, bodies[part]), CREATE_REQUESTS, 201))
            floor_create.append(asyncio.run(_floor_create(floor_db, owner_id, batch[part])))
            _log(f"create round {n + 1}: API {api_create[-1].rate:.0f}/s, raw loop {floor_create[-1]:.0f}/s")

        # 4's data, and 1's attachments.
        attached = _add_attachment_rows(database, owner_id)
        started = time.perf_counter()
        _seed_sync_owner(database, sync_owner_id)
        seeded = time.perf_counter() - started
        _log(f"{attached} attachment rows; {SYNC_RECORDS} records for the sync user in {seeded:.1f} s")

        # 1. list, taking turns with the floor app on the same database file.
        list_rows = _list_benchmark(database, mobile, owner_id, headers)

        # 4. first sync.
        syncs = []
        for n in range(SYNC_RUNS):
            seconds, seen, pages = _first_sync(mobile, sync_headers)
            if seen != SYNC_RECORDS:
                raise RuntimeError(f"the first sync saw {seen} records, not {SYNC_RECORDS}")
            syncs.append(seconds)
            _log(f"first sync {n + 1}: {seen} records in {pages} pages, {seconds:.2f} s")

    best_create, best_raw = max(x.rate for x in api_create), max(floor_create)
    create_ratio = best_create / best_raw
    sync_s = statistics.median(syncs)
    best = f"{CONCURRENCY} clients, best of {ROUNDS}"
    return [
        *list_rows,
        Row("create: mobile_service POST /records", f"{best_create:.0f} records/s ({best}){_refused(api_create)}"),
        Row("create: raw aiosqlite loop, same rows", f"{best_raw:.0f} records/s (one loop, best of {ROUNDS})"),
        Row(
            "create: mobile_service ÷ raw loop",
            f"{create_ratio:.2f}",
            f">= {CREATE_RATIO_TARGET}",
            create_ratio >= CREATE_RATIO_TARGET,
        ),
        _refused_row(f"create, {CONCURRENCY} concurrent writers", api_create, ROUNDS * CREATE_REQUESTS),
        Row(
            f"first sync, {SYNC_RECORDS:,} records in pages of {SYNC_PAGE}",
            f"{sync_s:.2f} s (median of {SYNC_RUNS}: {', '.join(f'{s:.2f}' for s in syncs)})",
            f"< {SYNC_TARGET_S:g} s",
            sync_s < SYNC_TARGET_S,
        ),
    ]


def _list_benchmark(database: Path, mobile: str, owner_id: str, headers: dict[str, str]) -> list[Row]:
    """Benchmark 1: the real list route and the floor app take turns on the same database file."""
    real_list: list[Load] = []
    floor_list: list[Load] = []
    path = "/api/v1/records?limit=50"
    with FloorServer(database, owner_id) as floor:
        _load(headers, _get(mobile + path), LIST_WARM_UP, 200)
        _load({}, _get(floor.url + path), LIST_WARM_UP, 200)
        for n in range(ROUNDS):
            real_list.append(_load(headers, _get(mobile + path), LIST_REQUESTS, 200))
            floor_list.append(_load({}, _get(floor.url + path), LIST_REQUESTS, 200))
            _log(f"list round {n + 1}: mobile_service {real_list[-1].rate:.0f}/s, floor {floor_list[-1].rate:.0f}/s")
    best_list, best_floor = max(x.rate for x in real_list), max(x.rate for x in floor_list)
    list_ratio = best_list / best_floor
    best = f"{CONCURRENCY} clients, best of {ROUNDS}"
    return [
        Row("list: mobile_service GET /records?limit=50", f"{best_list:.0f} req/s ({best}){_refused(real_list)}"),
        Row("list: floor (Starlette + raw aiosqlite)", f"{best_floor:.0f} req/s ({best}){_refused(floor_list)}"),
        Row(
            "list: mobile_service ÷ floor",
            f"{list_ratio:.2f}",
            f">= {LIST_RATIO_TARGET}",
            list_ratio >= LIST_RATIO_TARGET,
        ),
    ]


def _refused(loads: list[Load]) -> str:
    refused = sum(sum(load.refused.values()) for load in loads)
    return f", {refused} refused" if refused else ""


def _refused_row(name: str, loads: list[Load], total: int) -> Row:
    """How many requests of the measured rounds got another answer than success, and which."""
    counts: collections.Counter[str] = collections.Counter()
    for load in loads:
        counts.update(load.refused)
    refused = sum(counts.values())
    detail = "; ".join(f"{n}x {answer}" for answer, n in counts.most_common(2))
    return Row(
        f"{name}: answers other than success",
        f"{refused} of {total}" + (f" ({detail})" if detail else ""),
        "0",
        refused == 0,
    )


# -- a corpus, segmented in two processes ----------------------------------------------------


def _segment_chunk(chunk: list[Draft]) -> list[tuple[str, str]]:
    return [_index_texts(d) for d in chunk]


def _segmented(all_drafts: list[Draft]) -> Iterator[tuple[int, list[Draft], list[tuple[str, str]]]]:
    """(first sequence number, batch, index texts) per `BUILD_BATCH` drafts: two processes
    segment (jieba is most of the work) while the caller writes."""
    _index_texts(all_drafts[0])  # jieba loads its dictionary once, before the workers fork
    batches = [all_drafts[i : i + BUILD_BATCH] for i in range(0, len(all_drafts), BUILD_BATCH)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        first = 1
        for batch, texts in zip(batches, pool.imap(_segment_chunk, batches), strict=True):
            yield first, batch, texts
            first += len(batch)


def _load_average() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def run() -> list[Row]:
    before = _load_average()
    with tempfile.TemporaryDirectory(prefix="jilu-bench-") as tmp:
        rows = _service_benchmarks(Path(tmp))
    machine = f"{os.cpu_count()} cores; load average (1/5/15 min) {before} before, {_load_average()} after"
    return [Row("records: machine", machine), *rows]
