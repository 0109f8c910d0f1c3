"""Issue 5's benchmarks: the streaming chat relay and the analysis queue.

The provider is the fake OpenAI-compatible server of the tests (`run_fake_provider`), in
this process; Jilu is the real launcher (user, mobile and llm services) configured with
`JILU_LLM_*` to call it. Budgets are off and the per-user limits raised, so nothing is
refused; chat is limited to 30 questions a minute per user, so the samples are spread
over several users.

1. Streaming relay. The same streamed answer taken three ways, one after the other, in turns:
   straight from the fake provider (`POST /v1/chat/completions`, `stream: true`), as a
   question through mobile_service → llm_service (authentication, rate limit, the
   conversation, grounding: a search of the user's records and their memories) → the fake
   provider → back as SSE `delta` events through both services, and the same question asked
   of llm_service directly (no relay), which splits what the chat relay adds between the
   mobile → llm hop and llm_service's own work. Each user has the records
   and memories of a real account, so grounding costs what it would: 300 records of mixed
   Chinese and English (some on the question's subject, one in 15 opted out of AI, every
   one analysed before the clock runs) and 20 memories.
   - Time to first token: from sending the request to the first text chunk, 20-token
     answers, sent at once. Target (issue 11): the median through mobile less than 5 ms
     above direct.
   - Tokens per second: chunks after the first ÷ time from the first to the last, for a
     400-token answer paced at 5 ms per token (a fast model), target through mobile >= 0.9
     of direct (issue 5); and for 2,000 unpaced tokens, the relay's ceiling, target through
     mobile >= 0.8 of direct (issue 11). Every ratio is of samples taken side by side.
2. Analysis throughput. The fake answers every call after 50 ms. For 1, 4 and 16 workers
   (`JILU_ANALYSIS_WORKERS`, a fresh launcher each), 96 records are created through mobile
   (16 at a time) and the clock runs from the first create until every record's `ai.status`
   is `done`: jobs per second. A job may call the provider more than once (memories are
   extracted after the analysis), so the floor is well under 20 jobs/s per worker.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench import Row
from bench._launcher import LauncherProcess
from llm_service.tests.fake_provider import FakeProvider, Reply, run_fake_provider

PASSWORD = "correct horse battery 9"
USERS = 6
TTFT_SAMPLES = 60  # two questions each (via mobile, via llm); at most 30 a minute per user: spread over USERS
TTFT_TOKENS = 20
PACED_TOKENS, PACE_SECONDS, PACED_SAMPLES = 400, 0.005, 4
UNPACED_TOKENS, UNPACED_SAMPLES = 2000, 8
ANALYSIS_RECORDS = 96
ANALYSIS_WORKERS = (1, 4, 16)
ANALYSIS_DELAY = 0.05
TTFT_TARGET_MS = 5.0
THROUGHPUT_TARGET = 0.9  # paced
UNPACED_TARGET = 0.8
ANALYSIS = json.dumps({"title": "预算会议", "summary": "讨论了下季度的预算。", "tags": ["预算", "会议"]})
QUESTION = "预算会议讨论了什么？"
RECORDS = [
    "今天下午开会讨论了下季度的市场预算，财务部建议削减广告费用。",
    "买了新的咖啡机，周末试试手冲。",
    "Weekly sync: the budget review moved to Thursday.",
    "和小王吃饭，聊到明年的旅行计划。",
    "预算会议纪要：线上投放增加两成，线下活动减少。",
    "读完了《长安的荔枝》，很喜欢。",
]
RECORDS_PER_USER = 300
MEMORIES_PER_USER = 20
OPTED_OUT_EVERY = 15
CREATORS = 8
# What the rest of an account's records are made of: people, what happened, what about.
_ZH_WHO = ["和小王", "和团队", "跟妈妈", "同事老李", "产品组", "财务部", "客户", "我"]
_ZH_WHAT = [
    "开会讨论了",
    "在会议上提到",
    "吃饭时聊到",
    "打电话说起",
    "周会上过了一遍",
    "写了一份笔记：",
    "复盘了",
    "想了想",
]
_ZH_TOPIC = [
    "下季度的预算",
    "明年的旅行计划",
    "新项目的排期",
    "装修方案",
    "孩子的学校",
    "健身计划",
    "年终总结",
    "市场活动",
    "招聘进度",
    "读书会的书单",
    "房租和水电",
    "家庭开支预算",
    "周末去哪里爬山",
    "体检报告",
]
_ZH_HOW = ["，决定下周再定。", "，大家意见不太一致。", "，先按原计划走。", "，还需要补充数据。", "，挺顺利。", "。"]
_EN_WHO = ["Anna", "the design team", "Mr. Chen", "the landlord", "my manager", "the dentist"]
_EN_WHAT = ["Call with {who} about", "Met {who} to go over", "Email from {who} on", "Notes after seeing {who} about"]
_EN_TOPIC = [
    "the Q3 budget",
    "the launch plan",
    "hiring for the data team",
    "the lease renewal",
    "next week's offsite",
    "the quarterly review meeting",
    "a new running schedule",
    "the conference talk",
]
_EN_HOW = ["Follow up on Friday.", "Nothing decided yet.", "Looks fine.", "Need more numbers first.", ""]
MEMORIES = [
    "用户在一家互联网公司的市场部工作",
    "用户喜欢手冲咖啡",
    "用户每周四有部门例会",
    "用户住在上海",
    "用户正在学日语",
    "用户的女儿今年上小学",
    "用户对花生过敏",
    "用户每周跑步三次",
    "用户负责下季度的市场预算",
    "用户的直属上司是老李",
    "The user prefers short answers",
    "用户喜欢历史小说",
    "用户打算明年去云南旅行",
    "用户在存钱买房",
    "用户习惯早上写日记",
    "用户的生日在十月",
    "用户养了一只猫，叫团子",
    "用户不喝酒",
    "用户最近在装修新家",
    "The user's team ships a release every two weeks",
]


def account_records(seed: int) -> list[dict[str, object]]:
    """A believable account: the six records above among RECORDS_PER_USER, mostly Chinese
    notes of a sentence or a few, some English; every OPTED_OUT_EVERY-th opted out of AI."""
    rng = random.Random(seed)
    contents = list(RECORDS)
    while len(contents) < RECORDS_PER_USER:
        sentences = []
        for _ in range(rng.choice([1, 1, 2, 3, 5])):
            if rng.random() < 0.8:
                parts = (_ZH_WHO, _ZH_WHAT, _ZH_TOPIC, _ZH_HOW)
                sentences.append("".join(rng.choice(part) for part in parts))
            else:
                opening = rng.choice(_EN_WHAT).format(who=rng.choice(_EN_WHO))
                sentences.append(f"{opening} {rng.choice(_EN_TOPIC)}. {rng.choice(_EN_HOW)}".strip())
        contents.append(" ".join(sentences))
    rng.shuffle(contents)
    return [
        {"content": content, "ai_opt_out": n % OPTED_OUT_EVERY == OPTED_OUT_EVERY - 1}
        for n, content in enumerate(contents)
    ]


def _log(message: str) -> None:
    print(f"bench: llm: {message}", file=sys.stderr, flush=True)


def _environment(fake: FakeProvider, **extra: str) -> dict[str, str]:
    return {
        "JILU_LLM_PROVIDER": "custom",
        "JILU_LLM_BASE_URL": fake.base_url,
        "JILU_LLM_MODEL": "fake",
        "JILU_LLM_API_KEY": "sk-bench-fake",
        "JILU_LLM_ALLOWED_HOSTS": fake.host_port,
        "JILU_LLM_DAILY_REQUESTS": "0",
        "JILU_LLM_DAILY_TOKENS": "0",
        "JILU_RATE_USER": "100000000/minute",
        "JILU_RATE_LOGIN_ADDRESS": "1000/minute",
        "JILU_RATE_REGISTER_ADDRESS": "1000/hour",
        **extra,
    }


async def _login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    registered = await client.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD})
    registered.raise_for_status()
    token = await client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    token.raise_for_status()
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def _all_records(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"limit": 200}
    while True:
        page = (await client.get("/api/v1/records", headers=headers, params=params)).json()
        items += page["items"]
        if not page["next_cursor"]:
            return items
        params["cursor"] = page["next_cursor"]


async def _create_records(
    client: httpx.AsyncClient, headers: dict[str, str], pending: Iterator[dict[str, object]]
) -> None:
    for record in pending:
        (await client.post("/api/v1/records", headers=headers, json=record)).raise_for_status()


async def _wait_analysed(client: httpx.AsyncClient, headers: dict[str, str], expected: int, timeout: float) -> float:
    """Poll the record list until `expected` records are analysed (or, opted out of AI,
    skipped); the moment they were."""
    deadline = time.perf_counter() + timeout
    statuses: collections.Counter[str] = collections.Counter()
    while time.perf_counter() < deadline:
        items = await _all_records(client, headers)
        statuses = collections.Counter(item["ai"]["status"] for item in items)
        if statuses["done"] + statuses["skipped"] >= expected:
            return time.perf_counter()
        if statuses["failed"]:
            errors = collections.Counter(item["ai"]["error"] for item in items if item["ai"]["error"])
            raise RuntimeError(f"analysis jobs failed: {dict(errors)}")
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{expected} records were not analysed within {timeout:.0f}s: {dict(statuses)}")


# -- 1. the streaming relay -------------------------------------------------------------


class Timing:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.tokens: list[float] = []

    @property
    def ttft_ms(self) -> float:
        return (self.tokens[0] - self.started) * 1000

    @property
    def tokens_per_second(self) -> float:
        return (len(self.tokens) - 1) / (self.tokens[-1] - self.tokens[0])


async def _direct(http: httpx.AsyncClient, fake: FakeProvider) -> Timing:
    body = {"model": "fake", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    timing = Timing()
    async with http.stream("POST", f"{fake.base_url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    timing.tokens.append(time.perf_counter())
    return timing


async def _relayed(http: httpx.AsyncClient, service: str, headers: dict[str, str], conversation: str) -> Timing:
    url = f"{service}/api/v1/chat/conversations/{conversation}/messages"
    timing = Timing()
    async with http.stream("POST", url, headers=headers, json={"content": QUESTION, "stream": True}) as response:
        if response.status_code != 201:  # a question creates a message, streamed or not
            await response.aread()
            raise RuntimeError(f"the question answered {response.status_code}: {response.text[:200]}")
        async for line in response.aiter_lines():
            if line == "event: delta":
                timing.tokens.append(time.perf_counter())
            elif line == "event: error":
                raise RuntimeError("the relayed answer ended with an error event")
    return timing


async def _relay_benchmark(jilu: LauncherProcess, fake: FakeProvider) -> list[Row]:
    mobile = jilu.url("mobile")
    async with httpx.AsyncClient(base_url=mobile, timeout=60) as client:
        users = [await _login(client, f"bench{n}") for n in range(USERS)]
        fake.default_reply = Reply(text=ANALYSIS)
        started = time.perf_counter()
        for seed, headers in enumerate(users):
            pending = iter(account_records(seed))
            await asyncio.gather(*(_create_records(client, headers, pending) for _ in range(CREATORS)))
            for memory in MEMORIES[:MEMORIES_PER_USER]:
                (await client.post("/api/v1/memories", headers=headers, json={"content": memory})).raise_for_status()
        for headers in users:  # analysis calls the provider too: let it finish first
            await _wait_analysed(client, headers, RECORDS_PER_USER, timeout=600)
        _log(
            f"{USERS} users with {RECORDS_PER_USER} records and {MEMORIES_PER_USER} memories each, "
            f"analysed in {time.perf_counter() - started:.1f}s"
        )
        conversations = []
        for headers in users:
            created = await client.post("/api/v1/chat/conversations", headers=headers, json={})
            conversations.append(created.json()["id"])

    llm = jilu.url("llm")
    async with httpx.AsyncClient(timeout=60) as http:

        async def in_turns(reply: Reply, samples: int, *, via_llm: bool = True) -> dict[str, list[Timing]]:
            """`samples` of each way, taken in turns: direct, via mobile, via llm directly."""
            fake.default_reply = reply
            taken: dict[str, list[Timing]] = {"direct": [], "mobile": [], "llm": []}
            for n in range(samples):
                user = n % USERS
                taken["direct"].append(await _direct(http, fake))
                taken["mobile"].append(await _relayed(http, mobile, users[user], conversations[user]))
                if via_llm:
                    taken["llm"].append(await _relayed(http, llm, users[user], conversations[user]))
            return taken

        def medians(taken: dict[str, list[Timing]], measure: str) -> dict[str, float]:
            return {way: statistics.median(getattr(t, measure) for t in ts) for way, ts in taken.items() if ts}

        ttft_reply = Reply(text=ANALYSIS, chunks=["词"] * TTFT_TOKENS)
        await in_turns(ttft_reply, USERS)  # warm up connections and caches
        ttft = medians(await in_turns(ttft_reply, TTFT_SAMPLES - USERS), "ttft_ms")
        _log(
            f"time to first token: {ttft['direct']:.2f} ms direct, {ttft['mobile']:.2f} ms through mobile, "
            f"{ttft['llm']:.2f} ms from llm directly"
        )
        paced_reply = Reply(text=ANALYSIS, chunks=["词"] * PACED_TOKENS, chunk_delay=PACE_SECONDS)
        paced = medians(await in_turns(paced_reply, PACED_SAMPLES, via_llm=False), "tokens_per_second")
        _log(f"paced: {paced['direct']:.0f} tokens/s direct, {paced['mobile']:.0f} through mobile")
        unpaced_reply = Reply(text=ANALYSIS, chunks=["词"] * UNPACED_TOKENS)
        unpaced = medians(await in_turns(unpaced_reply, UNPACED_SAMPLES), "tokens_per_second")
        _log(
            f"unpaced: {unpaced['direct']:.0f} tokens/s direct, {unpaced['mobile']:.0f} through mobile, "
            f"{unpaced['llm']:.0f} from llm directly"
        )

    added = ttft["mobile"] - ttft["direct"]
    paced_ratio = paced["mobile"] / paced["direct"]
    unpaced_ratio = unpaced["mobile"] / unpaced["direct"]
    return [
        Row("chat TTFT median, direct from the fake provider", f"{ttft['direct']:.2f} ms"),
        Row("chat TTFT median, mobile → llm → fake", f"{ttft['mobile']:.2f} ms"),
        Row(
            "chat relay adds to the median TTFT (mobile → llm)",
            f"{added:.2f} ms",
            f"< {TTFT_TARGET_MS:g} ms",
            added < TTFT_TARGET_MS,
        ),
        Row("  of which llm_service's own (asked directly)", f"{ttft['llm'] - ttft['direct']:.2f} ms"),
        Row("  of which the mobile → llm hop", f"{ttft['mobile'] - ttft['llm']:.2f} ms"),
        Row(f"chat stream, {PACED_TOKENS} tokens paced 5 ms, direct", f"{paced['direct']:.0f} tokens/s"),
        Row(f"chat stream, {PACED_TOKENS} tokens paced 5 ms, via mobile", f"{paced['mobile']:.0f} tokens/s"),
        Row(
            "chat relay throughput ÷ direct (paced)",
            f"{paced_ratio:.2f}",
            f">= {THROUGHPUT_TARGET}",
            paced_ratio >= THROUGHPUT_TARGET,
        ),
        Row(f"chat stream, {UNPACED_TOKENS} tokens unpaced, direct", f"{unpaced['direct']:.0f} tokens/s"),
        Row(f"chat stream, {UNPACED_TOKENS} tokens unpaced, from llm directly", f"{unpaced['llm']:.0f} tokens/s"),
        Row(f"chat stream, {UNPACED_TOKENS} tokens unpaced, via mobile", f"{unpaced['mobile']:.0f} tokens/s"),
        Row(
            "chat relay throughput ÷ direct (unpaced)",
            f"{unpaced_ratio:.2f}",
            f">= {UNPACED_TARGET}",
            unpaced_ratio >= UNPACED_TARGET,
        ),
    ]


# -- 2. analysis throughput --------------------------------------------------------------


async def _analysis_rate(jilu: LauncherProcess) -> float:
    async with httpx.AsyncClient(base_url=jilu.url("mobile"), timeout=60) as client:
        headers = await _login(client, "analyst")
        pending = iter(range(ANALYSIS_RECORDS))
        started = time.perf_counter()

        async def creator() -> None:
            for n in pending:
                content = f"第{n}次会议：{RECORDS[n % len(RECORDS)]}"
                (await client.post("/api/v1/records", headers=headers, json={"content": content})).raise_for_status()

        await asyncio.gather(*(creator() for _ in range(16)))
        _log(f"{ANALYSIS_RECORDS} records created in {time.perf_counter() - started:.2f}s")
        finished = await _wait_analysed(client, headers, ANALYSIS_RECORDS, timeout=300)
    return ANALYSIS_RECORDS / (finished - started)


def run() -> list[Row]:
    rows: list[Row] = []
    with run_fake_provider() as fake, tempfile.TemporaryDirectory(prefix="jilu-bench-llm-") as tmp:
        services = ("user", "mobile", "llm")
        with LauncherProcess(Path(tmp) / "chat", services=services, extra_env=_environment(fake)) as jilu:
            jilu.wait_up()
            rows += asyncio.run(_relay_benchmark(jilu, fake))
        rates = {}
        for workers in ANALYSIS_WORKERS:
            fake.reset()
            fake.default_reply = Reply(text=ANALYSIS, delay=ANALYSIS_DELAY)
            env = _environment(fake, JILU_ANALYSIS_WORKERS=str(workers))
            with LauncherProcess(Path(tmp) / f"analysis-{workers}", services=services, extra_env=env) as jilu:
                jilu.wait_up()
                rates[workers] = asyncio.run(_analysis_rate(jilu))
            calls = len(fake.chat_requests) / ANALYSIS_RECORDS
            _log(f"analysis with {workers} worker(s): {rates[workers]:.1f} jobs/s ({calls:.1f} provider calls a job)")
        for workers, rate in rates.items():
            speedup = f" ({rate / rates[1]:.1f}× one worker)" if workers > 1 else ""
            rows.append(Row(f"analysis, fake answers in 50 ms, {workers} worker(s)", f"{rate:.1f} jobs/s{speedup}"))
    return rows
