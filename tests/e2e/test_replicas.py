"""Jilu scaled out: two replicas of every stateless service on one PostgreSQL database, one
Redis and one data dir (SPEC §2 "Scale-out").

Two real launchers (tests/harness.py), started as a deployment starts replicas: the database
migrated once beforehand, each launcher with `--no-migrate`. Replica A runs user_service,
mobile_service, web_service and llm_service; replica B runs mobile_service, web_service and
llm_service and finds the one user_service at A's port. Each replica's web and mobile reach
its own llm_service (JILU_LLM_PORT), and both llm_services run the analysis and extraction
workers and the digest scheduler. The provider is the fake one (a real HTTP server speaking the
OpenAI wire format), which counts every call.

One test, so the seven processes start once: rate limits are shared, sync cursors stay
monotonic and gap-free under concurrent writes through all four public ports, each analysis
and extraction job is done exactly once, the digest scheduler writes a digest once, and a
change written through one replica reaches an event stream open on the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.cache.embedded import EmbeddedRedis
from common.database.migrate import upgrade_to_head
from llm_service.tests.fake_provider import FakeProvider, ReceivedRequest, Reply, run_fake_provider
from tests.e2e.stack import E2E_RATES
from tests.harness import ROOT, Launcher, free_ports
from tests.support import SseMessage, sse_messages

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

PASSWORD = "plum-Lantern-42"
ANALYSIS = json.dumps({"title": "A replica's note", "summary": "Written through one of two replicas.", "tags": ["x"]})
# Every user's budget of authenticated requests, counted in Redis (JILU_RATE_USER).
USER_RATE = 300
WRITERS_RECORDS = 8  # records each of the four concurrent sync writers creates
ANALYSED_RECORDS = 6
TEXT_FILES = 6
# Bounds on waiting only (a loaded machine is slow), never timing assertions.
WITHIN = 90.0
EVENTS_WITHIN = 30.0


def _system_openings(prompt: str) -> tuple[str, ...]:
    """How the system part of `prompt` begins in every language (up to its first placeholder)."""
    openings = []
    for path in sorted((ROOT / "llm_service" / "res" / "prompts").glob(f"*/{prompt}.txt")):
        system = path.read_text(encoding="utf-8").split("[system]", 1)[1].strip()
        openings.append(system.split("{", 1)[0][:40])
    assert openings and all(openings), f"no {prompt} prompt found, or one opening with a placeholder"
    return tuple(openings)


ANALYSIS_OPENINGS = _system_openings("analyze")
DIGEST_OPENINGS = _system_openings("digest")


def _messages(request: ReceivedRequest) -> list[str]:
    body = request.json if isinstance(request.json, dict) else {}
    return [str(m.get("content")) for m in body.get("messages", []) if isinstance(m, dict)]


def calls(fake: FakeProvider, openings: tuple[str, ...]) -> list[ReceivedRequest]:
    """The chat completions the provider was asked for with a system prompt opening so."""
    return [r for r in fake.chat_requests if (_messages(r) or [""])[0].startswith(openings)]


@dataclass
class Replicas:
    a: Launcher
    b: Launcher
    fake: FakeProvider

    def public(self) -> list[str]:
        """The four public ports: mobile A, web B, mobile B, web A (writes and reads go round them)."""
        return [self.a.url("mobile"), self.b.url("web"), self.b.url("mobile"), self.a.url("web")]

    def llm_lines(self) -> list[str]:
        return [*self.a.service_lines("llm"), *self.b.service_lines("llm")]


@pytest.fixture
def replicas(postgres_url: str, tmp_path: Path) -> Iterator[Replicas]:
    upgrade_to_head(postgres_url)  # once, before any replica starts (the launchers: --no-migrate)
    redis = EmbeddedRedis(f"redis://127.0.0.1:{free_ports(1)[0]}/0", tmp_path / "redis").start()
    try:
        with run_fake_provider() as fake, ExitStack() as stack:
            fake.default_reply = Reply(text=ANALYSIS, delay=0.2)  # slow enough for runs to overlap
            settings = {
                "JILU_ENV": "development",
                "JILU_DATABASE_URL": postgres_url,
                "JILU_EMBEDDED_REDIS": "never",
                "JILU_SECRET_KEY": "replicas-" + "k" * 40,
                **fake.launch_settings(),
                # Both schedulers try a run every half second for the whole test.
                "JILU_SCHEDULER_INTERVAL_SECONDS": "0.5",
                **E2E_RATES,
                "JILU_RATE_USER": f"{USER_RATE}/minute",
            }
            data_dir = tmp_path / "data"  # one for both: the attachments' files are shared
            # Taken just before the launchers bind them (other tests take free ports too).
            user, web_a, mobile_a, llm_a, web_b, mobile_b, llm_b = free_ports(7)
            a = stack.enter_context(
                Launcher(
                    data_dir,
                    redis.url,
                    ["--no-migrate"],
                    ports={"web": web_a, "user": user, "mobile": mobile_a, "llm": llm_a},
                    settings={**settings, "JILU_SERVICES": "web,user,mobile,llm"},
                )
            )
            b = stack.enter_context(  # no user_service of its own: it finds A's at `user`
                Launcher(
                    data_dir,
                    redis.url,
                    ["--no-migrate"],
                    ports={"web": web_b, "user": user, "mobile": mobile_b, "llm": llm_b},
                    settings={**settings, "JILU_SERVICES": "web,mobile,llm"},
                )
            )
            a.wait_until_up()
            b.wait_until_up()
            yield Replicas(a, b, fake)
    finally:
        redis.stop()


# -- the clients' side ---------------------------------------------------------------------


@dataclass
class Account:
    username: str
    headers: dict[str, str]


async def account(http: httpx.AsyncClient, url: str, username: str) -> Account:
    registered = await http.post(f"{url}/api/v1/auth/register", json={"username": username, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    token = await http.post(f"{url}/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert token.status_code == 200, token.text
    return Account(username, {"Authorization": f"Bearer {token.json()['access_token']}"})


async def create(http: httpx.AsyncClient, url: str, who: Account, **fields: Any) -> dict[str, Any]:
    response = await http.post(f"{url}/api/v1/records", headers=who.headers, json=fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def record(http: httpx.AsyncClient, url: str, who: Account, record_id: str) -> dict[str, Any]:
    response = await http.get(f"{url}/api/v1/records/{record_id}", headers=who.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def eventually(check: Callable[[], Awaitable[bool]], what: str, replicas: Replicas) -> None:
    """Poll `check` until it holds (a bound on waiting, not a timing assertion)."""
    deadline = asyncio.get_running_loop().time() + WITHIN
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} within {WITHIN:.0f}s\nA:{replicas.a.output}\nB:{replicas.b.output}")
        await asyncio.sleep(0.25)


@dataclass
class EventStream:
    """`GET /api/v1/events` held open on one replica, what it received so far."""

    messages: list[SseMessage] = field(default_factory=list)
    hello: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def created(self) -> set[str]:
        return {m.data["record_id"] for m in self.messages if m.event == "record" and m.data["type"] == "created"}


@contextlib.asynccontextmanager
async def event_stream(http: httpx.AsyncClient, url: str, who: Account) -> AsyncIterator[EventStream]:
    stream = EventStream()

    async def read() -> None:
        async with http.stream("GET", f"{url}/api/v1/events", headers=who.headers, timeout=None) as response:
            assert response.status_code == 200, await response.aread()
            async for message in sse_messages(response):
                stream.messages.append(message)
                if message.event == "hello":
                    stream.hello.set()
                stream.changed.set()

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(asyncio.shield(stream.hello.wait()), EVENTS_WITHIN)
        yield stream
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_for_events(stream: EventStream, record_ids: set[str]) -> None:
    deadline = asyncio.get_running_loop().time() + EVENTS_WITHIN
    while not record_ids <= stream.created():
        stream.changed.clear()
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise AssertionError(f"events for {record_ids - stream.created()} never came: {stream.messages}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stream.changed.wait(), remaining)


# -- the checks --------------------------------------------------------------------------------


async def check_live_events(http: httpx.AsyncClient, replicas: Replicas, eve: Account) -> None:
    """A change written through one replica reaches the event streams open on both. (The
    records opt out of AI: only the records made to be analysed are.)"""
    web_a, web_b = replicas.a.url("web"), replicas.b.url("web")
    async with event_stream(http, web_a, eve) as on_a, event_stream(http, web_b, eve) as on_b:
        through_a = await create(http, replicas.a.url("mobile"), eve, content="Through A.", ai_opt_out=True)
        through_b = await create(http, web_b, eve, content="Through B.", ai_opt_out=True)
        written = {through_a["id"], through_b["id"]}
        await wait_for_events(on_b, written)
        await wait_for_events(on_a, written)


async def check_sync_cursors(http: httpx.AsyncClient, replicas: Replicas, sam: Account) -> None:
    """Four writers, one per public port, create records at once while a reader follows the
    change feed one change a page, asking each replica in turn: the cursors it is handed are
    1, 2, 3 … with none skipped or repeated, and it sees every record once."""
    ports = replicas.public()
    created: list[str] = []
    writing = True

    async def writer(url: str, n: int) -> None:
        for i in range(WRITERS_RECORDS):
            # Opted out of AI: no analysis result comes to take a later number.
            made = await create(http, url, sam, content=f"writer {n} record {i}", ai_opt_out=True)
            created.append(made["id"])

    async def reader() -> tuple[list[int], list[str]]:
        cursors: list[int] = []
        seen: list[str] = []
        cursor, turn = 0, 0
        while True:
            url = ports[turn % len(ports)]
            turn += 1
            done = not writing  # read before asking: what was written before it is in this answer
            response = await http.get(
                f"{url}/api/v1/sync/changes", params={"since": cursor, "limit": 1}, headers=sam.headers
            )
            assert response.status_code == 200, response.text
            page = response.json()
            assert page["cursor"] >= cursor, page  # never back
            if page["changes"]:
                cursor = page["cursor"]
                cursors.append(cursor)
                seen.extend(change["id"] for change in page["changes"])
            elif done:
                return cursors, seen
            else:
                await asyncio.sleep(0.2)  # within the user's request budget

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(url, n) for n, url in enumerate(ports)))
    writing = False
    cursors, seen = await asyncio.wait_for(reading, WITHIN)

    total = WRITERS_RECORDS * len(ports)
    assert cursors == list(range(1, total + 1))
    assert sorted(seen) == sorted(created)
    assert len(set(seen)) == total


async def check_shared_rate_limit(http: httpx.AsyncClient, replicas: Replicas, rex: Account) -> None:
    """One user's requests spread over the four public ports meet one budget: a 429 comes
    before twice the budget is spent, where four budgets of their own would take four times
    it (and each port alone served less than half of one)."""
    ports = replicas.public()
    served: Counter[str] = Counter()
    refused: list[str] = []

    async def lane(url: str) -> None:
        while not refused and sum(served.values()) < 2 * USER_RATE:
            response = await http.get(f"{url}/api/v1/records", params={"limit": 1}, headers=rex.headers)
            if response.status_code == 429:
                assert response.json()["error"] == "rate_limited", response.text
                refused.append(url)
                return
            assert response.status_code == 200, response.text
            served[url] += 1

    await asyncio.gather(*(lane(url) for url in ports))

    assert refused, f"no 429 after {sum(served.values())} requests over four replicas: {served}"
    assert all(count < USER_RATE for count in served.values()), served


async def test_two_replicas_of_each_service_share_the_database_redis_and_the_work(replicas: Replicas) -> None:
    fake = replicas.fake
    ports = replicas.public()
    async with httpx.AsyncClient(timeout=30) as http:
        # The first account is the instance's admin, and is made alone (a second registration
        # meanwhile is told to try again); the others at once, through every port.
        alice = await account(http, ports[0], "alice")
        sam, eve, fay, rex = await asyncio.gather(
            *(account(http, ports[i % len(ports)], name) for i, name in enumerate(("sam", "eve", "fay", "rex"), 1))
        )

        # Work for the two llm_services, written through every port: records to analyse (the
        # first occurred yesterday, so a daily digest is due), text files to read.
        yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        notes = []
        for i in range(ANALYSED_RECORDS):
            when = {"occurred_at": yesterday} if i == 0 else {}
            notes.append(await create(http, ports[i % len(ports)], alice, content=f"replica note {i}.", **when))
        attachments: dict[str, str] = {}  # attachment id -> its record's id
        for i in range(TEXT_FILES):
            url = ports[i % len(ports)]
            holder = await create(http, url, fay, content=f"file holder {i}", ai_opt_out=True)
            files = {"file": (f"notes-{i}.txt", f"text file {i} to read once\n".encode(), "text/plain")}
            uploaded = await http.post(
                f"{url}/api/v1/records/{holder['id']}/attachments", headers=fay.headers, files=files
            )
            assert uploaded.status_code == 201, uploaded.text
            attachments[uploaded.json()["id"]] = holder["id"]

        # Meanwhile, on the stateless side.
        await check_live_events(http, replicas, eve)
        await check_sync_cursors(http, replicas, sam)
        await check_shared_rate_limit(http, replicas, rex)

        async def analysed() -> bool:
            states = [(await record(http, ports[0], alice, n["id"]))["ai"]["status"] for n in notes]
            assert "failed" not in states, states
            return all(state == "done" for state in states)

        async def read() -> bool:
            held = [await record(http, ports[1], fay, record_id) for record_id in set(attachments.values())]
            states = [a["extraction"]["status"] for r in held for a in r["attachments"]]
            assert "failed" not in states, states
            return len(states) == TEXT_FILES and all(state == "done" for state in states)

        async def digested() -> bool:
            response = await http.get(f"{ports[2]}/api/v1/digests", headers=alice.headers)
            assert response.status_code == 200, response.text
            return any(d["period"] == "day" for d in response.json()["items"])

        await eventually(analysed, "every record analysed", replicas)
        await eventually(read, "every text file read", replicas)
        await eventually(digested, "yesterday's digest written", replicas)
        digests = (await http.get(f"{ports[3]}/api/v1/digests", headers=alice.headers)).json()["items"]

    # Each analysis job reached the provider once, whichever replica took it.
    analysis_calls = calls(fake, ANALYSIS_OPENINGS)
    per_note = Counter(
        f"replica note {i}."
        for i in range(ANALYSED_RECORDS)
        for r in analysis_calls
        if f"replica note {i}." in "".join(_messages(r))
    )
    assert per_note == Counter({f"replica note {i}.": 1 for i in range(ANALYSED_RECORDS)}), per_note
    assert len(analysis_calls) == ANALYSED_RECORDS

    # Each text file was read once: one "read attachment <id> with …" line over both llm_services.
    read_lines = Counter(
        match[1] for line in replicas.llm_lines() if (match := re.search(r"read attachment (\S+) with", line))
    )
    assert read_lines == Counter(dict.fromkeys(attachments, 1)), read_lines

    # Both llm_services took jobs: their workers all read the same two queues.
    for name, launcher in (("A", replicas.a), ("B", replicas.b)):
        done = [line for line in launcher.service_lines("llm") if re.search(r"analysed record|read attachment", line)]
        assert done, f"llm_service {name} did no job:\n{launcher.output}"

    # Two schedulers ran every half second all along: each due digest was written once, and the
    # provider asked once for it. (Today being a Monday, last week's is due too.)
    periods = Counter((d["period"], d["period_start"]) for d in digests)
    assert [period for period, _ in periods].count("day") == 1, digests
    assert all(count == 1 for count in periods.values()), digests
    assert len(calls(fake, DIGEST_OPENINGS)) == len(digests)
