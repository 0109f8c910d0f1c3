"""Issue 13's load benchmark: a mixed workload from many users at once, on SQLite and on
PostgreSQL, through the real launcher (every service), and its long form, the soak.

The system: `python main.py` with all four services (`bench/_launcher.py`), the tests' fake
OpenAI-compatible provider in a process of its own (`bench/_fake_llm.py`: record analysis,
memory extraction and chat all call it; a streamed answer is 30 tokens, 10 ms apart), once on
SQLite (the data dir's file) and once on a new PostgreSQL database (created for the run and
dropped after; the row is skipped when no server answers at `JILU_BENCH_POSTGRES_URL`, by
default the tests' `postgresql://postgres@127.0.0.1:5432/test`). The per-user and
per-address limits are raised as the end-to-end tests raise them (`tests/e2e/stack.py`).

The users: `USERS` (50) registered accounts, half on the web port (logged in as the browser
app is: `POST /api/v1/auth/session` with its `Origin`, then the access token as `Bearer`),
half on the mobile port (`POST /api/v1/auth/token`). Each starts with `SEED_RECORDS` records
(mixed Chinese and English, made through the API and analysed before the clock runs) and a
chat conversation. Each user is a closed loop on its own connection: pick an operation,
wait for its answer, think for a while (exponential, mean `JILU_BENCH_LOAD_THINK_MS`, 500 ms
by default), again. The mix:

| share | operation | request | answer expected |
|---|---|---|---|
| 40% | list | `GET /api/v1/records?limit=50` | 200 |
| 20% | search | `GET /api/v1/search?q=<a word of the records>` | 200 |
| 20% | create | `POST /api/v1/records` (kind, title, content, tags, occurred_at) | 201 |
| 10% | upload | `POST /api/v1/records/{id}/attachments`: a 640 × 480 JPEG (~30 KB), to the user's latest record | 201 |
| 10% | chat | `POST /api/v1/chat/conversations/{id}/messages`, `stream: true`, read to `done` | 201, `done` |

Why think times rather than a tight loop: chat is limited to 30 questions a minute per user
and uploads to 120 (fixed in the code, not settings), so a user asking faster than a person
would gets a 429 by design; a user that would exceed 28 questions in a minute waits first.
A new conversation is started every `QUESTIONS_PER_CONVERSATION` questions (timed as chat).

Measured, per operation: requests per second, p50/p95/p99 latency (chat: the whole stream,
and its time to first token on a row of its own), and errors — any other status, a connection
error or timeout (30 s), a stream that ends without `done`. The clock covers `DURATION`
seconds (`JILU_BENCH_LOAD_SECONDS`, 60) after `WARM_UP` seconds of the same load; a request
counts when it started inside the window. Targets (issue 13, on a 2-core machine): 0 errors,
p99 under 500 ms for everything but chat. The load generator runs on the same machine (one
process, uvloop, httpx): its CPU time is shown in the summary row.

The soak (`make soak`, `python -m bench.load --soak`): the same workload on SQLite (or
PostgreSQL: `SOAK_DATABASE=postgresql`) for `SOAK_SECONDS` (600), sampling every service's
resident memory (its process and all its children, e.g. llm_service's OCR worker) every
`SOAK_SAMPLE_SECONDS` (15); it prints the series, each service's growth (the mean of the
last minute against the mean of the first, and, to tell warm-up from a leak, against the minute
half-way) and the per-operation table. Target: growth under
`SOAK_GROWTH_TARGET` (10%) for every service, and 0 errors.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import json
import os
import random
import resource
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from bench import Row, format_table
from bench._launcher import LauncherProcess
from bench.records import drafts
from tests.harness import Spawned, clean_env, free_ports

USERS = 50
SEED_RECORDS = 30
DURATION = float(os.environ.get("JILU_BENCH_LOAD_SECONDS", "60"))
WARM_UP = 10.0
THINK_MEAN = float(os.environ.get("JILU_BENCH_LOAD_THINK_MS", "500")) / 1000
REQUEST_TIMEOUT = 30.0
PASSWORD = "correct horse battery 9"
MIX = (("list", 40), ("search", 20), ("create", 20), ("upload", 10), ("chat", 10))
OPERATIONS = tuple(name for name, _ in MIX)
P99_TARGET_MS = 500.0
CHAT_PER_MINUTE = 28  # the service allows 30 questions a minute per user
QUESTIONS_PER_CONVERSATION = 10
SEARCH_WORDS = "预算 会议 咖啡 跑步 周报 旅行 meeting budget 读书笔记 火锅 project 健身".split()
QUESTIONS = (
    "我这周开了哪些会？",
    "最近的预算讨论有什么结论？",
    "What did I note about the project?",
    "我上次去健身是什么时候？",
)

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
SOAK_SAMPLE_SECONDS = float(os.environ.get("SOAK_SAMPLE_SECONDS", "15"))
SOAK_GROWTH_TARGET = 0.10

POSTGRES_ADMIN_URL = os.environ.get(
    "JILU_BENCH_POSTGRES_URL", os.environ.get("JILU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
)
RATES = {  # as tests/e2e/stack.py's E2E_RATES
    "JILU_RATE_LOGIN_ADDRESS": "10000/minute",
    "JILU_RATE_REGISTER_ADDRESS": "10000/minute",
    "JILU_RATE_USER": "100000/minute",
}


def _log(message: str) -> None:
    print(f"bench: load: {message}", file=sys.stderr, flush=True)


# -- what is measured -------------------------------------------------------------------------


@dataclass
class Sample:
    operation: str
    started: float
    seconds: float
    error: str | None = None
    first_token: float | None = None  # chat: seconds to the first `delta`


@dataclass
class Recorder:
    samples: list[Sample] = field(default_factory=list)

    def window(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.started < end]


def _percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (`share` of 1) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * share + 0.999999) - 1))]


def _rows(label: str, samples: list[Sample], seconds: float) -> list[Row]:
    rows = []
    for operation in OPERATIONS:
        taken = [s for s in samples if s.operation == operation]
        errors = [s for s in taken if s.error]
        times = [s.seconds * 1000 for s in taken if not s.error]
        if not times:
            rows.append(Row(f"load {label}: {operation}", f"no answer ({len(errors)} errors)", ok=False))
            continue
        p50, p95, p99 = (_percentile(times, q) for q in (0.5, 0.95, 0.99))
        kinds = collections.Counter(s.error for s in errors)
        detail = "; ".join(f"{n}x {kind}" for kind, n in kinds.most_common(2))
        measured = (
            f"{len(taken) / seconds:.1f}/s, p50 {p50:.0f} / p95 {p95:.0f} / p99 {p99:.0f} ms, "
            f"errors {len(errors)}/{len(taken)}" + (f" ({detail})" if detail else "")
        )
        if operation == "chat":  # a stream's length is the provider's: no latency target
            rows.append(Row(f"load {label}: {operation} (whole stream)", measured, "0 errors", not errors))
            ttft = [s.first_token * 1000 for s in taken if s.first_token is not None]
            if ttft:
                t50, t95, t99 = (_percentile(ttft, q) for q in (0.5, 0.95, 0.99))
                rows.append(
                    Row(f"load {label}: chat time to first token", f"p50 {t50:.0f} / p95 {t95:.0f} / p99 {t99:.0f} ms")
                )
            continue
        ok = not errors and p99 < P99_TARGET_MS
        rows.append(Row(f"load {label}: {operation}", measured, f"0 errors, p99 < {P99_TARGET_MS:.0f} ms", ok))
    return rows


# -- the users --------------------------------------------------------------------------------


def _photo(seed: int) -> bytes:
    """A 640 × 480 JPEG: a gradient with a few shapes, ~30 KB."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(600), rng.randrange(440)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x, y, x + rng.randrange(20, 120), y + rng.randrange(20, 120)), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@dataclass
class User:
    name: str
    port: str  # "web" or "mobile"
    client: httpx.AsyncClient
    headers: dict[str, str] = field(default_factory=dict)
    latest_record: str = ""
    conversation: str = ""
    questions: int = 0
    asked: collections.deque[float] = field(default_factory=collections.deque)


async def _sign_in(user: User) -> None:
    registered = await user.client.post("/api/v1/auth/register", json={"username": user.name, "password": PASSWORD})
    registered.raise_for_status()
    if user.port == "web":  # as the browser app: the session route, with its Origin
        origin = str(user.client.base_url).rstrip("/")
        answer = await user.client.post(
            "/api/v1/auth/session", json={"username": user.name, "password": PASSWORD}, headers={"Origin": origin}
        )
    else:
        answer = await user.client.post("/api/v1/auth/token", data={"username": user.name, "password": PASSWORD})
    answer.raise_for_status()
    user.headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def _new_conversation(user: User) -> None:
    answer = await user.client.post("/api/v1/chat/conversations", headers=user.headers, json={})
    answer.raise_for_status()
    user.conversation = answer.json()["id"]
    user.questions = 0


class Workload:
    """The users and what they do; `run(until)` drives every user until `until`."""

    def __init__(self, urls: dict[str, str], recorder: Recorder) -> None:
        self.urls = urls
        self.recorder = recorder
        self.rng = random.Random(13)
        self.drafts = drafts(10**7, seed=13)
        self.photos = [_photo(n) for n in range(8)]
        self.users: list[User] = []
        self.weights = [weight for _, weight in MIX]
        self.operations: dict[str, Callable[[User, Sample], Awaitable[None]]] = {
            "list": self._list,
            "search": self._search,
            "create": self._create,
            "upload": self._upload,
            "chat": self._chat,
        }

    async def set_up(self) -> None:
        run_id = uuid.uuid4().hex[:6]
        for n in range(USERS):
            port = "web" if n % 2 == 0 else "mobile"
            client = httpx.AsyncClient(
                base_url=self.urls[port],
                timeout=REQUEST_TIMEOUT,
                # Idle for less than the server's keep-alive (uvicorn: 5 s), or a request may go
                # out on a connection the server is closing (a browser would retry it).
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=2.0),
            )
            self.users.append(User(f"load_{run_id}_{n:02d}", port, client))
        # One at a time for the first (it becomes the administrator), then eight at once.
        await _sign_in(self.users[0])
        await _gather_bounded((_sign_in(user) for user in self.users[1:]), 8)
        started = time.perf_counter()
        seeds = ((user, next(self.drafts)) for user in self.users for _ in range(SEED_RECORDS))
        await _gather_bounded((self._seed(user, draft.body()) for user, draft in seeds), 16)
        await _gather_bounded((_new_conversation(user) for user in self.users), 8)
        _log(f"{USERS} users with {SEED_RECORDS} records each in {time.perf_counter() - started:.1f} s")

    async def _seed(self, user: User, body: dict[str, object]) -> None:
        answer = await user.client.post("/api/v1/records", headers=user.headers, json=body)
        answer.raise_for_status()
        user.latest_record = answer.json()["id"]

    async def wait_analysed(self, timeout: float) -> None:
        """Until every seed record is analysed: the load starts without a backlog of them."""
        deadline = time.perf_counter() + timeout
        pending = list(self.users)
        while pending and time.perf_counter() < deadline:
            still = []
            for user in pending:
                page = await user.client.get("/api/v1/records", headers=user.headers, params={"limit": 200})
                page.raise_for_status()
                if any(item["ai"]["status"] in ("pending", "running") for item in page.json()["items"]):
                    still.append(user)
            pending = still
            if pending:
                await asyncio.sleep(1)
        if pending:
            _log(f"{len(pending)} users' seed records were still being analysed after {timeout:.0f} s")

    async def close(self) -> None:
        for user in self.users:
            await user.client.aclose()

    async def run(self, until: float) -> None:
        await asyncio.gather(*(self._user_loop(user, until) for user in self.users))

    async def _user_loop(self, user: User, until: float) -> None:
        # Spread the first requests over a think time, as users arriving.
        await asyncio.sleep(self.rng.uniform(0, THINK_MEAN * 2))
        while time.perf_counter() < until:
            operation = self.rng.choices(OPERATIONS, self.weights)[0]
            if operation == "chat":
                await self._pace_questions(user)
            sample = Sample(operation, time.perf_counter(), 0.0)
            try:
                await self.operations[operation](user, sample)
            except Exception as exc:  # noqa: BLE001 - a connection error, a timeout, a bad answer: counted
                sample.error = type(exc).__name__
            sample.seconds = time.perf_counter() - sample.started
            self.recorder.samples.append(sample)
            await asyncio.sleep(self.rng.expovariate(1 / THINK_MEAN) if THINK_MEAN > 0 else 0)

    async def _pace_questions(self, user: User) -> None:
        """At most CHAT_PER_MINUTE questions in any minute (the service's limit is 30)."""
        now = time.perf_counter()
        while user.asked and user.asked[0] < now - 60:
            user.asked.popleft()
        if len(user.asked) >= CHAT_PER_MINUTE:
            await asyncio.sleep(user.asked[0] + 60 - now)
        user.asked.append(time.perf_counter())

    @staticmethod
    def _check(answer: httpx.Response, expected: int, sample: Sample) -> bool:
        if answer.status_code == expected:
            return True
        try:
            code = answer.json().get("error", "")
        except ValueError:
            code = answer.text[:60]
        sample.error = f"{answer.status_code} {code}".strip()
        return False

    async def _list(self, user: User, sample: Sample) -> None:
        answer = await user.client.get("/api/v1/records", headers=user.headers, params={"limit": 50})
        self._check(answer, 200, sample)

    async def _search(self, user: User, sample: Sample) -> None:
        query = self.rng.choice(SEARCH_WORDS)
        answer = await user.client.get("/api/v1/search", headers=user.headers, params={"q": query})
        self._check(answer, 200, sample)

    async def _create(self, user: User, sample: Sample) -> None:
        answer = await user.client.post("/api/v1/records", headers=user.headers, json=next(self.drafts).body())
        if self._check(answer, 201, sample):
            user.latest_record = answer.json()["id"]

    async def _upload(self, user: User, sample: Sample) -> None:
        n = self.rng.randrange(len(self.photos))
        files = {"file": (f"photo-{n}.jpg", self.photos[n], "image/jpeg")}
        answer = await user.client.post(
            f"/api/v1/records/{user.latest_record}/attachments", headers=user.headers, files=files
        )
        self._check(answer, 201, sample)

    async def _chat(self, user: User, sample: Sample) -> None:
        if user.questions >= QUESTIONS_PER_CONVERSATION:
            await _new_conversation(user)
        user.questions += 1
        url = f"/api/v1/chat/conversations/{user.conversation}/messages"
        body = {"content": self.rng.choice(QUESTIONS), "stream": True}
        async with user.client.stream("POST", url, headers=user.headers, json=body) as answer:
            if answer.status_code != 201:
                await answer.aread()
                self._check(answer, 201, sample)
                return
            event = ""
            async for line in answer.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                    if event == "delta" and sample.first_token is None:
                        sample.first_token = time.perf_counter() - sample.started
                    elif event == "done":
                        break
                elif line.startswith("data: ") and event == "error":
                    sample.error = f"error event {json.loads(line[6:]).get('error')}"
                    break
            if event != "done" and not sample.error:
                sample.error = "stream ended without done"


async def _gather_bounded(jobs: Iterator[Awaitable[None]], at_once: int) -> None:
    queue = iter(jobs)

    async def worker() -> None:
        for job in queue:
            await job

    await asyncio.gather(*(worker() for _ in range(at_once)))


# -- the system under load --------------------------------------------------------------------


class FakeProviderProcess(Spawned):
    """`bench/_fake_llm.py` on a free port, stopped on exit."""

    def __init__(self) -> None:
        self.port = free_ports(1)[0]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        command = [sys.executable, "-m", "bench._fake_llm", str(self.port)]
        super().__init__("the fake provider", command, clean_env(), keep_lines=200)

    def __enter__(self) -> FakeProviderProcess:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"the fake provider did not start:\n{self.output}") from None
                time.sleep(0.1)


def _postgres_admin(sql: str) -> None:
    import asyncpg

    async def execute() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(execute())


def postgres_answers() -> bool:
    try:
        _postgres_admin("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure means: no server to run on
        return False
    return True


@contextmanager
def database(kind: str, data_dir: Path) -> Iterator[str]:
    """The JILU_DATABASE_URL of a new database: "" (the data dir's SQLite file), or a new
    PostgreSQL database, dropped on exit."""
    if kind == "sqlite":
        yield ""
        return
    name = f"jilu_bench_load_{uuid.uuid4().hex[:10]}"
    _postgres_admin(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _environment(fake: FakeProviderProcess, database_url: str) -> dict[str, str]:
    return {
        **RATES,
        "JILU_DATABASE_URL": database_url,
        "JILU_LLM_PROVIDER": "custom",
        "JILU_LLM_BASE_URL": fake.base_url,
        "JILU_LLM_MODEL": "fake",
        "JILU_LLM_API_KEY": "sk-bench-fake",
        "JILU_LLM_ALLOWED_HOSTS": f"127.0.0.1:{fake.port}",
        "JILU_LLM_DAILY_REQUESTS": "0",
        "JILU_LLM_DAILY_TOKENS": "0",
        "JILU_ACCESS_TOKEN_MINUTES": "1440",  # a long soak outlives the 15 minutes
    }


def rss_mb(jilu: LauncherProcess) -> dict[str, float]:
    """Each service's resident memory in MB: its process and every process under it."""
    sizes: dict[str, float] = {}
    for name, process in jilu.service_processes().items():
        total = 0
        for proc in [process, *process.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        sizes[name] = total / 2**20
    return sizes


@dataclass
class Outcome:
    samples: list[Sample]
    seconds: float
    rss: list[tuple[float, dict[str, float]]]
    client_cpu: float
    load_average: str


async def _drive(
    jilu: LauncherProcess,
    seconds: float,
    sample_every: float | None,
    on_sample: Callable[[float, dict[str, float]], None],
) -> Outcome:
    recorder = Recorder()
    workload = Workload({"web": jilu.url("web"), "mobile": jilu.url("mobile")}, recorder)
    try:
        await workload.set_up()
        await workload.wait_analysed(timeout=300)
        rss: list[tuple[float, dict[str, float]]] = []
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        window = (started + WARM_UP, started + WARM_UP + seconds)
        _log(f"{USERS} users: {WARM_UP:.0f} s warm-up, then {seconds:.0f} s measured")

        async def sampler() -> None:
            while sample_every:
                await asyncio.sleep(max(0.0, window[0] + len(rss) * sample_every - time.perf_counter()))
                at, sizes = time.perf_counter() - window[0], rss_mb(jilu)
                rss.append((at, sizes))
                on_sample(at, sizes)

        sampling = asyncio.create_task(sampler())
        try:
            await workload.run(until=window[1])
        finally:
            sampling.cancel()
        if not sample_every:
            rss.append((seconds, rss_mb(jilu)))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
        elapsed = time.perf_counter() - started
        load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
        return Outcome(recorder.window(*window), seconds, rss, cpu / elapsed, load)
    finally:
        await workload.close()


def measure(
    kind: str,
    seconds: float,
    *,
    sample_every: float | None = None,
    on_sample: Callable[[float, dict[str, float]], None] = lambda _at, _sizes: None,
) -> Outcome:
    """The workload for `seconds` on a new instance on `kind` ("sqlite" or "postgresql")."""
    import uvloop

    with (
        FakeProviderProcess() as fake,
        tempfile.TemporaryDirectory(prefix="jilu-bench-load-") as tmp,
        database(kind, Path(tmp)) as database_url,
        LauncherProcess(Path(tmp) / "data", extra_env=_environment(fake, database_url)) as jilu,
    ):
        _log(f"{kind}: launcher up after {jilu.wait_up(120):.1f} s (Redis: {jilu.redis_description})")
        _log("pids: " + ", ".join(f"{name} {proc.pid}" for name, proc in jilu.service_processes().items()))
        log = os.environ.get("JILU_BENCH_LOAD_LOG")  # where to write everything the services print
        if log:
            jilu.lines = collections.deque(maxlen=None)
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(_drive(jilu, seconds, sample_every, on_sample))
        finally:
            if log:
                Path(f"{log}.{kind}").write_text("\n".join(jilu.lines), encoding="utf-8")


def _summary(label: str, outcome: Outcome) -> Row:
    errors = sum(1 for s in outcome.samples if s.error)
    rate = len(outcome.samples) / outcome.seconds
    rss = ", ".join(f"{name} {mb:.0f}" for name, mb in outcome.rss[-1][1].items())
    return Row(
        f"load {label}: all, {USERS} users, {outcome.seconds:.0f} s",
        f"{rate:.0f} req/s, {errors} errors of {len(outcome.samples)}; RSS after (MB): {rss}; "
        f"load generator CPU {outcome.client_cpu:.0%}; load average {outcome.load_average}",
        "0 errors",
        errors == 0,
    )


def run() -> list[Row]:
    rows: list[Row] = []
    for kind in os.environ.get("JILU_BENCH_LOAD_DATABASES", "sqlite,postgresql").split(","):
        if kind == "postgresql" and not postgres_answers():
            rows.append(Row("load (PostgreSQL)", f"skipped: no PostgreSQL server answers at {POSTGRES_ADMIN_URL}"))
            continue
        label = "(SQLite)" if kind == "sqlite" else "(PostgreSQL)"
        outcome = measure(kind, DURATION)
        rows += [_summary(label, outcome), *_rows(label, outcome.samples, outcome.seconds)]
    return rows


# -- the soak ---------------------------------------------------------------------------------


def soak(kind: str, seconds: float, *, strict: bool = False) -> int:
    """`make soak`: print the RSS series, the growth and the per-operation table. As with
    `python -m bench`, a missed target fails the run only when `strict`."""
    names = ("user", "mobile", "web", "llm")
    print(f"soak: {kind}, {USERS} users, {seconds:.0f} s, RSS (MB) every {SOAK_SAMPLE_SECONDS:.0f} s", flush=True)
    print("     t  " + "".join(f"{name:>9}" for name in names), flush=True)

    def show(at: float, sizes: dict[str, float]) -> None:
        print(f"{at:6.0f} s" + "".join(f"{sizes.get(name, 0):9.1f}" for name in names), flush=True)

    outcome = measure(kind, seconds, sample_every=SOAK_SAMPLE_SECONDS, on_sample=show)
    label = "(SQLite)" if kind == "sqlite" else "(PostgreSQL)"
    rows = [_summary(label, outcome)]
    first = [sizes for at, sizes in outcome.rss if at < 60]
    middle = [sizes for at, sizes in outcome.rss if seconds / 2 - 30 <= at < seconds / 2 + 30]
    last = [sizes for at, sizes in outcome.rss if at >= seconds - 60]
    for name in names:
        if not first or not middle or not last:
            break
        before = statistics.mean(sizes[name] for sizes in first)
        halfway = statistics.mean(sizes[name] for sizes in middle)
        after = statistics.mean(sizes[name] for sizes in last)
        growth = (after - before) / before
        rows.append(
            Row(
                f"soak {label}: {name}_service RSS, first vs last minute",
                f"{before:.1f} → {after:.1f} MB ({growth:+.1%}; second half {(after - halfway) / halfway:+.1%})",
                f"< +{SOAK_GROWTH_TARGET:.0%}",
                growth < SOAK_GROWTH_TARGET,
            )
        )
    rows += _rows(label, outcome.samples, outcome.seconds)
    print(format_table(rows), flush=True)
    return 1 if strict and any(row.ok is False for row in rows) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--soak", action="store_true", help="the soak (SOAK_SECONDS, default 600) instead")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.soak:
        kind = os.environ.get("SOAK_DATABASE", "sqlite")
        if kind not in ("sqlite", "postgresql"):
            parser.error("SOAK_DATABASE is sqlite or postgresql")
        return soak(kind, SOAK_SECONDS, strict=args.strict)
    rows = run()
    print(format_table(rows))
    return 1 if args.strict and any(row.ok is False for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
