"""`GET /api/v1/events` on web_service served over real HTTP (a stream must not be buffered):
records written through the real records API, the real Redis stream behind them."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from common.cache import create_redis
from common.cache.embedded import EmbeddedRedis
from common.records.events import RECORD_EVENTS_STREAM
from tests.support import app_client, assert_error, async_wait_until, free_port
from web_service.app.config import WebSettings
from web_service.app.deps import web_state
from web_service.app.events.entries import RecordEvent, Reset
from web_service.app.events.hub import MAX_STREAMS_PER_OWNER, RecordEventHub
from web_service.app.main import create_app as create_web_app
from web_service.tests.conftest import MakeWebStack
from web_service.tests.support import (
    EVENTS,
    PATIENCE,
    RECORDS,
    SseMessage,
    WebStack,
    bearer,
    create,
    nothing_more,
    open_events,
    record_events,
)


async def stream_events(redis: Redis, owner_id: str) -> list[tuple[str, dict[str, Any]]]:
    """`owner_id`'s entries of the record stream, as the SSE stream must carry them."""
    entries: list[tuple[str, dict[str, str]]] = await redis.xrange(RECORD_EVENTS_STREAM)  # type: ignore[assignment]
    return [
        (entry_id, {"type": fields["type"], "record_id": fields["record_id"], "version": int(fields["version"])})
        for entry_id, fields in entries
        if fields["owner_id"] == owner_id
    ]


def as_sent(messages: list[SseMessage]) -> list[tuple[str | None, Any]]:
    assert all(message.event == "record" for message in messages), messages
    return [(message.id, message.data) for message in messages]


@pytest.fixture
async def web(web_stack: WebStack) -> httpx.AsyncClient:
    return await web_stack.served()


async def test_the_callers_own_changes_arrive_live_and_nobody_elses(
    web_stack: WebStack, web: httpx.AsyncClient
) -> None:
    alice_id, _ = await web_stack.register("alice"), await web_stack.register("bob")
    alice, bob = await web_stack.token("alice"), await web_stack.token("bob")

    async with open_events(web, alice) as events:
        assert events.response.headers["content-type"].startswith("text/event-stream")
        assert events.response.headers["cache-control"] == "no-cache"
        assert events.response.headers["x-accel-buffering"] == "no"

        bobs = await create(web, bob, "bob's")
        record = await create(web, alice)
        edited = await web.patch(
            f"{RECORDS}/{record['id']}", json={"content": "edited", "version": 1}, headers=bearer(alice)
        )
        assert edited.status_code == 200, edited.text
        bob_edit = await web.patch(f"{RECORDS}/{bobs['id']}", json={"content": "x", "version": 1}, headers=bearer(bob))
        assert bob_edit.status_code == 200
        assert (await web.delete(f"{RECORDS}/{record['id']}", headers=bearer(alice))).status_code == 204

        received = await record_events(events, 3)
        assert [m.data["type"] for m in received] == ["created", "updated", "deleted"]
        assert {m.data["record_id"] for m in received} == {record["id"]}
        assert received[0].data["version"] == 1 and received[1].data["version"] == edited.json()["version"]
        assert as_sent(received) == await stream_events(web_stack.redis, alice_id)
        await nothing_more(events)


async def test_last_event_id_replays_exactly_what_was_missed(web_stack: WebStack, web: httpx.AsyncClient) -> None:
    alice_id, _ = await web_stack.register("alice"), await web_stack.register("bob")
    alice, bob = await web_stack.token("alice"), await web_stack.token("bob")

    async with open_events(web, alice) as events:
        await create(web, alice, "seen")
        (seen,) = await record_events(events, 1)
    # Offline for a while: two of alice's records and one of bob's are written meanwhile.
    missed = [await create(web, alice, "missed 1"), await create(web, bob), await create(web, alice, "missed 2")]

    async with open_events(web, alice, last_event_id=seen.id) as events:
        replayed = await record_events(events, 2)
        assert [m.data["record_id"] for m in replayed] == [missed[0]["id"], missed[2]["id"]]
        live = await create(web, alice, "live")
        (after,) = await record_events(events, 1)
        assert after.data == {"type": "created", "record_id": live["id"], "version": 1}
        await nothing_more(events)
    assert as_sent([seen, *replayed, after]) == await stream_events(web_stack.redis, alice_id)

    # Resuming at the newest id misses nothing and repeats nothing.
    async with open_events(web, alice, last_event_id=after.id) as events:
        await nothing_more(events)


@pytest.mark.parametrize("stale", ["trimmed", "garbage", "from-the-future"])
async def test_an_id_the_stream_no_longer_has_yields_reset_then_live_events(
    web_stack: WebStack, web: httpx.AsyncClient, stale: str
) -> None:
    await web_stack.register("alice")
    alice = await web_stack.token("alice")
    for index in range(3):
        await create(web, alice, f"old {index}")
    entries: list[tuple[str, Any]] = await web_stack.redis.xrange(RECORD_EVENTS_STREAM)  # type: ignore[assignment]
    await web_stack.redis.xtrim(RECORD_EVENTS_STREAM, maxlen=1, approximate=False)
    last_event_id = {"trimmed": entries[0][0], "garbage": "yesterday", "from-the-future": "99999999999999-0"}[stale]

    async with open_events(web, alice, last_event_id=last_event_id) as events:
        reset = await events.next_event()
        assert reset is not None
        assert (reset.event, reset.data, reset.id) == ("reset", {}, entries[-1][0])
        record = await create(web, alice, "new")
        (live,) = await record_events(events, 1)
        assert live.data["record_id"] == record["id"]


async def sync_cursor(client: httpx.AsyncClient, token: str, since: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """`/api/v1/sync/changes` paged to the end from `since`: its last cursor, and the changes."""
    changes: list[dict[str, Any]] = []
    while True:
        response = await client.get("/api/v1/sync/changes", params={"since": since, "limit": 2}, headers=bearer(token))
        assert response.status_code == 200, response.text
        page = response.json()
        changes += page["changes"]
        since = page["cursor"]
        if not page["has_more"]:
            return since, changes


async def test_hello_carries_the_sync_cursor_first(web_stack: WebStack, web: httpx.AsyncClient) -> None:
    await web_stack.register("alice")
    await web_stack.register("bob")
    alice, bob = await web_stack.token("alice"), await web_stack.token("bob")

    async with open_events(web, alice) as events:  # nothing written yet
        assert events.cursor == 0 == (await sync_cursor(web, alice))[0]

    written = [await create(web, alice, f"before {index}") for index in range(3)]
    await create(web, bob)  # another user's changes move no cursor of alice's
    deleted = await web.delete(f"{RECORDS}/{written[0]['id']}", headers=bearer(alice))
    assert deleted.status_code == 204, deleted.text
    head, _ = await sync_cursor(web, alice)

    async with open_events(web, alice) as events:
        assert events.cursor == head > 0
        after = await create(web, alice, "after the hello")
        (live,) = await record_events(events, 1)
        assert live.data["record_id"] == after["id"]
        _, since_hello = await sync_cursor(web, alice, since=events.cursor)
        assert [change["id"] for change in since_hello] == [after["id"]]

    # On a resume too the hello comes first, and the replay after it.
    async with open_events(web, alice, last_event_id=live.id) as events:
        assert events.cursor == (await sync_cursor(web, alice))[0]
        await nothing_more(events)


async def test_an_owner_holds_at_most_ten_streams(web_stack: WebStack, web: httpx.AsyncClient) -> None:
    await web_stack.register("alice")
    await web_stack.register("bob")
    alice, bob = await web_stack.token("alice"), await web_stack.token("bob")
    hub: RecordEventHub = web_state(web_stack.app).record_events
    async with contextlib.AsyncExitStack() as streams:
        for _ in range(MAX_STREAMS_PER_OWNER):
            await streams.enter_async_context(open_events(web, alice))
        refused = await web.get(EVENTS, headers=bearer(alice))
        assert_error(refused, 429, "rate_limited")
        assert int(refused.headers["retry-after"]) >= 1
        async with open_events(web, bob) as events:  # the cap is per owner
            assert events.cursor == 0
    # Closed streams free their places.
    assert await async_wait_until(lambda: hub.subscriber_count == 0)
    async with open_events(web, alice) as events:
        assert events.hello is not None


async def test_a_heartbeat_comes_while_nothing_happens(web_stack: WebStack, web: httpx.AsyncClient) -> None:
    await web_stack.register("alice")
    alice = await web_stack.token("alice")
    async with open_events(web, alice) as events:
        for _ in range(2):
            ping = await events.next(timeout=5 * web_stack.settings.events_heartbeat_seconds + 2)
            assert ping is not None
            assert (ping.event, ping.data) == ("comment", "ping")


@pytest.mark.parametrize("ending", ["logout", "deactivation"])
async def test_the_stream_ends_when_the_session_does(web_stack: WebStack, web: httpx.AsyncClient, ending: str) -> None:
    await web_stack.register("root")  # the first account: the administrator
    alice_id = await web_stack.register("alice")
    alice = await web_stack.token("alice")
    async with open_events(web, alice) as events:
        assert (await events.next()) is not None  # a ping: the stream is open
        if ending == "logout":
            response = await web_stack.users.post("/api/v1/auth/logout", headers=bearer(alice))
            assert response.status_code == 204
        else:
            root = await web_stack.token("root")
            response = await web_stack.users.patch(
                f"/api/v1/admin/users/{alice_id}", json={"is_active": False}, headers=bearer(root)
            )
            assert response.status_code == 200, response.text
        end = await events.next_event()
        assert end is not None
        assert (end.event, end.data) == ("end", {})
        assert await events.next() is None  # closed by the server
    # Deactivation ended every session of the account too.
    assert_error(await web.get(EVENTS, headers=bearer(alice)), 401, "session_ended")


async def test_an_unauthenticated_request_is_401(web: httpx.AsyncClient) -> None:
    assert_error(await web.get(EVENTS), 401, "unauthorized")
    assert_error(await web.get(EVENTS, headers=bearer("not.a.token")), 401, "invalid_token")


async def test_a_dropped_reader_connection_is_resumed_without_missing_anything(
    web_stack: WebStack, web: httpx.AsyncClient
) -> None:
    await web_stack.register("alice")
    alice = await web_stack.token("alice")
    hub: RecordEventHub = web_state(web_stack.app).record_events
    name = hub.redis.connection_pool.connection_kwargs["client_name"]  # (its client lives on the server's loop)
    async with open_events(web, alice) as events:
        assert (await events.next()) is not None
        clients = await web_stack.redis.client_list()
        reader = [c for c in clients if c.get("name") == name and c.get("cmd") == "xread"]
        assert len(reader) == 1, clients
        await web_stack.redis.client_kill_filter(_id=reader[0]["id"])
        record = await create(web, alice)
        (live,) = await record_events(events, 1)
        assert live.data["record_id"] == record["id"]


async def test_redis_going_away_ends_open_streams_cleanly(make_web_stack: MakeWebStack, tmp_path: Path) -> None:
    """No `end` (the session did not end) and no broken response: the body just finishes, and
    the client polls until it can reconnect with `Last-Event-ID`."""
    server = EmbeddedRedis(f"redis://127.0.0.1:{free_port()}/0", tmp_path / "redis").start()
    try:
        stack = await make_web_stack(
            web={"redis_url": server.url, "events_heartbeat_seconds": 0.3}, user={"redis_url": server.url}
        )
        web = await stack.served()
        await stack.register("alice")
        alice = await stack.token("alice")
        async with open_events(web, alice) as events:
            assert (await events.next()) is not None
            server.stop()
            while (message := await events.next(timeout=60)) is not None:
                assert message.event == "comment", message
    finally:
        server.stop()


async def test_redis_down_is_503(make_settings: Callable[..., Any], migrated_database_url: str) -> None:
    settings = make_settings(
        WebSettings, database_url=migrated_database_url, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    app = create_web_app(settings)
    async with app_client(app) as client:
        token = web_state(app).tokens.issue("access", str(uuid.uuid4()), uuid.uuid4().hex, ("read", "write")).token
        assert_error(await client.get(EVENTS, headers=bearer(token)), 503, "service_unavailable")


async def test_a_subscriber_that_falls_behind_is_reset_and_goes_on_live(redis: Redis, redis_url: str) -> None:
    stream = f"jilu:test:events:{uuid.uuid4().hex}"
    hub = RecordEventHub(create_redis(redis_url), stream=stream, queue_size=2)
    hub.start()
    try:
        slow = await hub.subscribe("u1")
        other = await hub.subscribe("u2")

        async def add(owner: str) -> str:
            fields = {"type": "created", "record_id": uuid.uuid4().hex, "owner_id": owner, "version": "1"}
            return str(await redis.xadd(stream, fields))  # type: ignore[arg-type]

        ids = [await add("u1") for _ in range(3)]
        queued = slow.queue._queue  # type: ignore[attr-defined]
        assert await async_wait_until(lambda: bool(queued) and isinstance(queued[0], Reset), PATIENCE)
        assert slow.queue.qsize() == 1 and (await slow.get()) == Reset(ids[-1])
        newer = await add("u1")
        event = await asyncio.wait_for(slow.get(), PATIENCE)
        assert isinstance(event, RecordEvent) and event.id == newer
        assert other.queue.empty()
    finally:
        await hub.stop()
        await redis.delete(stream)
    assert hub.subscriber_count == 0


async def test_a_live_event_waits_until_its_change_is_committed(web_stack: WebStack, web: httpx.AsyncClient) -> None:
    """The stream gets an event inside the writing transaction; the browser must not hear of
    a change it cannot fetch yet."""
    from common.database import create_engine, create_sessionmaker
    from web_service.app.events.committed import commit_waiter

    alice_id = await web_stack.register("alice")
    alice = await web_stack.token("alice")
    record = await create(web, alice)
    engine = create_engine(web_stack.settings.resolved_database_url)
    try:
        wait = commit_waiter(create_sessionmaker(engine))
        # Version 2 is announced but not stored yet.
        # `ensure_future`: the waiter is typed as returning an awaitable, not a coroutine.
        pending = asyncio.ensure_future(wait(RecordEvent("1-0", (1, 0), alice_id, "updated", record["id"], 2)))
        await asyncio.sleep(0.3)
        assert not pending.done()
        edited = await web.patch(
            f"{RECORDS}/{record['id']}", json={"content": "v2", "version": 1}, headers=bearer(alice)
        )
        assert edited.status_code == 200, edited.text
        await asyncio.wait_for(pending, PATIENCE)
        # Already visible (version 1 <= 2): no wait at all; another owner's id never matches.
        await asyncio.wait_for(wait(RecordEvent("1-1", (1, 1), alice_id, "created", record["id"], 1)), 0.5)
        foreign = asyncio.ensure_future(wait(RecordEvent("1-2", (1, 2), "someone-else", "created", record["id"], 1)))
        await asyncio.sleep(0.3)
        assert not foreign.done()
        foreign.cancel()
    finally:
        await engine.dispose()
