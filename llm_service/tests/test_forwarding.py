"""llm_service's endpoints through the two client-facing ports: mobile_service and web_service
relay `/api/v1/llm/*`, `/api/v1/memories*`, `/api/v1/digests*`, `/api/v1/chat/*` and
`POST /api/v1/records/{id}/analyze` to llm_service over real HTTP, and answer what it answers:
the same status and body, its errors included, its streams unbuffered, its redirects made
relative to the port the client used (`chat_stack.py`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from llm_service.tests.chat_stack import ChatStack, chat_stack, sse_events
from llm_service.tests.fake_provider import UPSTREAM_MARKER, FakeProvider, Reply
from tests.support import assert_error

PORTS = ("mobile", "web")
PRESETS = "/api/v1/llm/presets"
CONFIG = "/api/v1/llm/config"
TEST_CALL = "/api/v1/llm/test"
USAGE = "/api/v1/llm/usage"
MEMORIES = "/api/v1/memories"
DIGESTS = "/api/v1/digests"
CONVERSATIONS = "/api/v1/chat/conversations"
API_KEY = "sk-live-7d21c0e9a4b3f586-never-shown"
# A loopback address that `llm_allowed_hosts` does not list (only the fake's is).
UNLISTED_LOOPBACK = "http://127.0.0.1:11435/v1"
UNKNOWN_ID = "01a2001e-0000-7000-8000-000000000000"
# Digests are written in the owner's time zone; users start with this one (`User.time_zone`).
USER_TIME_ZONE = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def stack(
    make_settings: Callable[..., Any], migrated_database_url: str, redis: Any, fake: FakeProvider
) -> Callable[..., Any]:
    """`async with stack() as chat:` — llm, mobile and web over real HTTP on one database and
    Redis; the default provider is the offline one, the fake's host:port may be configured,
    and the scheduler is off (only what a test does writes digests)."""

    def build(**llm: Any) -> Any:
        llm = {"scheduler_interval_seconds": 0, "llm_allowed_hosts": [fake.host_port], **llm}
        return chat_stack(make_settings, migrated_database_url, **llm)

    return build


def fake_config(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    return {"provider": "custom", "base_url": fake.base_url, "model": "user-model", "api_key": API_KEY, **extra}


async def each(chat: ChatStack, method: str, url: str, **kwargs: Any) -> dict[str, httpx.Response]:
    """The same request straight to llm_service and through each port (for requests that
    change nothing)."""
    return {name: await getattr(chat, name).request(method, url, **kwargs) for name in ("llm", *PORTS)}


def assert_relayed(responses: dict[str, httpx.Response], status: int, code: str | None = None) -> Any:
    """Every port answered what llm_service answered: the status, Jilu's error shape when
    `code` is given, and the very same body. Returns that body."""
    direct = responses["llm"]
    for name, response in responses.items():
        request = f"{name}: {response.request.method} {response.request.url.path}"
        try:
            if code is None:
                assert response.status_code == status, response.text
                assert response.headers["content-type"].startswith("application/json")
            else:
                assert_error(response, status, code)
            assert response.json() == direct.json(), "not what llm_service answered"
        except AssertionError as exc:
            raise AssertionError(f"{request}: {exc}") from exc
    return direct.json()


async def ok(pending: Awaitable[httpx.Response], status: int = 200) -> Any:
    response = await pending
    assert response.status_code == status, response.text
    return response.json()


# -- provider settings ------------------------------------------------------------------------


async def test_presets_and_the_users_config_through_each_port_never_show_the_key(stack, fake) -> None:
    async with stack() as chat:
        alice, bob = chat.headers["alice"], chat.headers["bob"]
        presets = assert_relayed(await each(chat, "GET", PRESETS, headers=alice), 200)
        anonymous = await each(chat, "GET", PRESETS)
        initial = assert_relayed(await each(chat, "GET", CONFIG, headers=alice), 200)
        instance = assert_relayed(await each(chat, "GET", CONFIG, headers=alice, params={"scope": "instance"}), 200)

        saved = await chat.mobile.put(CONFIG, headers=alice, json=fake_config(fake, model="mobile-model"))
        read = await each(chat, "GET", CONFIG, headers=alice)
        # No key given: the stored one is kept (same host); through the other port.
        kept = await chat.web.put(CONFIG, headers=alice, json=fake_config(fake, model="web-model", api_key=None))
        read_again = await chat.mobile.get(CONFIG, headers=alice)
        bobs = await chat.web.get(CONFIG, headers=bob)
        cleared = await chat.web.put(CONFIG, headers=alice, json=fake_config(fake, api_key=""))
        # The query string is relayed: the instance's settings are for admins (bob is not).
        refused = await each(chat, "PUT", CONFIG, headers=bob, params={"scope": "instance"}, json=fake_config(fake))

    assert [preset["name"] for preset in presets][-1] == "custom" and len(presets) > 1
    assert_relayed(anonymous, 401, "unauthorized")
    assert initial["provider"] == "local" and initial["source"] == "default" and initial["scope"] == "user"
    assert instance["scope"] == "instance"
    expected = {
        "provider": "custom",
        "base_url": fake.base_url,
        "model": "mobile-model",
        "api_key_set": True,
        "scope": "user",
        "source": "user",
    }
    assert saved.status_code == 200, saved.text
    assert saved.json() == expected
    assert assert_relayed(read, 200) == expected
    assert kept.status_code == 200, kept.text
    assert kept.json() == {**expected, "model": "web-model"}
    assert read_again.json() == kept.json()
    assert bobs.json()["source"] == "default"  # alice's settings are hers alone
    assert cleared.status_code == 200 and cleared.json()["api_key_set"] is False
    assert_relayed(refused, 403, "forbidden")
    for response in [saved, kept, read_again, cleared, *read.values(), *refused.values()]:
        assert API_KEY not in response.text


async def test_the_test_call_through_each_port_reaches_the_fake_provider(stack, fake) -> None:
    fake.default_reply = Reply(text="pong")
    async with stack() as chat:
        alice = chat.headers["alice"]
        passed = {}
        for port in PORTS:
            passed[port] = await getattr(chat, port).post(TEST_CALL, headers=alice, json=fake_config(fake, model=port))
        calls_after_passing = list(fake.chat_requests)
        fake.default_reply = Reply.error(401)
        failed = await each(chat, "POST", TEST_CALL, headers=alice, json=fake_config(fake))
        calls_after_failing = len(fake.chat_requests)
        unlisted = await each(
            chat, "POST", TEST_CALL, headers=alice, json=fake_config(fake, base_url=UNLISTED_LOOPBACK)
        )
        stored = await chat.web.get(CONFIG, headers=alice)

    for port, response in passed.items():
        assert response.status_code == 200, response.text
        result = response.json()
        assert (result["ok"], result["provider"], result["model"]) == (True, "custom", port)
        assert isinstance(result["latency_ms"], int) and result["error_class"] is None
    assert [request.json["model"] for request in calls_after_passing] == list(PORTS)
    for request in calls_after_passing:
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.json["messages"] == [{"role": "user", "content": "ping"}]
    for name, response in failed.items():
        assert response.status_code == 200, (name, response.text)
        result = response.json()
        assert (result["ok"], result["error_class"], result["latency_ms"]) == (False, "unauthorized", None), name
        assert UPSTREAM_MARKER not in response.text and API_KEY not in response.text
    assert calls_after_failing == len(calls_after_passing) + 3  # one each, never retried
    refused = assert_relayed(unlisted, 422, "validation_error")
    assert any(problem["field"].split(".")[-1] == "base_url" for problem in refused["detail"])
    assert stored.json()["source"] == "default"  # a test saves nothing


async def test_the_budget_usage_through_each_port_is_the_callers_own(stack, fake) -> None:
    fake.default_reply = Reply(text="## Today\n\nA quiet day.")
    remote = {"llm_provider": "custom", "llm_base_url": fake.base_url, "llm_model": "env-model"}
    async with stack(**remote, llm_daily_requests=10, llm_daily_tokens=0) as chat:
        alice, bob = chat.headers["alice"], chat.headers["bob"]
        generated = await chat.web.post(f"{DIGESTS}/generate", headers=alice, json={"period": "day"})
        alices = assert_relayed(await each(chat, "GET", USAGE, headers=alice), 200)
        bobs = assert_relayed(await each(chat, "GET", USAGE, headers=bob), 200)
        anonymous = await each(chat, "GET", USAGE)

    assert generated.status_code == 201, generated.text
    tokens = sum(Reply().usage)
    assert {k: alices[k] for k in ("requests", "tokens")} == {
        "requests": {"used": 1, "limit": 10},
        "tokens": {"used": tokens, "limit": None},
    }
    assert {k: bobs[k] for k in ("requests", "tokens")} == {
        "requests": {"used": 0, "limit": 10},
        "tokens": {"used": 0, "limit": None},
    }
    assert alices["resets_at"] == bobs["resets_at"]
    assert_relayed(anonymous, 401, "unauthorized")


# -- memories ---------------------------------------------------------------------------------


async def test_memories_are_created_listed_edited_and_deleted_through_each_port(stack) -> None:
    async with stack() as chat:
        alice = chat.headers["alice"]
        tea = await ok(
            chat.mobile.post(MEMORIES, headers=alice, json={"content": "我喜欢喝乌龙茶", "importance": 0.8}), 201
        )
        # The same fact again, through the other port: that memory, reinforced, not a new one.
        again = await ok(chat.web.post(MEMORIES, headers=alice, json={"content": "我喜欢喝乌龙茶。"}), 200)
        city = await ok(chat.web.post(MEMORIES, headers=alice, json={"content": "I live in Hangzhou"}), 201)
        listed = assert_relayed(await each(chat, "GET", MEMORIES, headers=alice), 200)
        edited = await ok(
            chat.web.patch(
                f"{MEMORIES}/{tea['id']}", headers=alice, json={"content": "我更喜欢普洱茶", "long_term": False}
            )
        )
        read = assert_relayed(await each(chat, "GET", f"{MEMORIES}/{tea['id']}", headers=alice), 200)
        short_term = assert_relayed(
            await each(chat, "GET", MEMORIES, headers=alice, params={"long_term": "false"}), 200
        )
        deleted = await chat.mobile.delete(f"{MEMORIES}/{city['id']}", headers=alice)
        gone = await each(chat, "GET", f"{MEMORIES}/{city['id']}", headers=alice)
        deleted_again = await chat.web.delete(f"{MEMORIES}/{city['id']}", headers=alice)
        remaining = assert_relayed(await each(chat, "GET", MEMORIES, headers=alice), 200)

    assert tea["content"] == "我喜欢喝乌龙茶" and tea["importance"] == 0.8 and tea["source"] == "user"
    assert again["id"] == tea["id"] and again["reinforced_at"] is not None
    assert [m["id"] for m in listed["items"]] == [city["id"], tea["id"]] and listed["next_cursor"] is None
    assert edited["content"] == "我更喜欢普洱茶" and edited["long_term"] is False and edited["expires_at"]
    assert read == edited
    assert [m["id"] for m in short_term["items"]] == [tea["id"]]
    assert deleted.status_code == 204 and deleted.content == b""
    assert_relayed(gone, 404, "not_found")
    assert_error(deleted_again, 404, "not_found")
    assert remaining["items"] == [edited]


# -- digests ----------------------------------------------------------------------------------


async def test_digests_are_generated_listed_read_and_pinned_through_each_port(stack) -> None:
    async with stack() as chat:
        alice = chat.headers["alice"]
        record = await chat.record("alice", content="今天去西湖散步，看到了荷花。")
        day = dt.datetime.fromisoformat(record["occurred_at"]).astimezone(USER_TIME_ZONE).date().isoformat()
        written = await ok(
            chat.web.post(f"{DIGESTS}/generate", headers=alice, json={"period": "day", "date": day}), 201
        )
        listed = assert_relayed(await each(chat, "GET", DIGESTS, headers=alice), 200)
        weekly = assert_relayed(await each(chat, "GET", DIGESTS, headers=alice, params={"period": "week"}), 200)
        flagged = await ok(
            chat.mobile.patch(f"{DIGESTS}/{written['id']}", headers=alice, json={"is_read": True, "is_pinned": True})
        )
        read = assert_relayed(await each(chat, "GET", f"{DIGESTS}/{written['id']}", headers=alice), 200)
        unread = await ok(chat.web.patch(f"{DIGESTS}/{written['id']}", headers=alice, json={"is_read": False}))
        # Writing the same day again, through the other port: the same digest, its pin kept.
        rewritten = await ok(
            chat.mobile.post(f"{DIGESTS}/generate", headers=alice, json={"period": "day", "date": day}), 201
        )
        after = assert_relayed(await each(chat, "GET", DIGESTS, headers=alice), 200)

    assert written["period"] == "day" and written["provider"] == "local"
    assert written["record_ids"] == [record["id"]] and written["content"]
    assert (written["is_read"], written["is_pinned"]) == (False, False)
    assert listed == {"items": [written], "next_cursor": None}
    assert weekly == {"items": [], "next_cursor": None}
    assert (flagged["id"], flagged["is_read"], flagged["is_pinned"]) == (written["id"], True, True)
    assert read == flagged
    assert (unread["is_read"], unread["is_pinned"]) == (False, True)
    assert rewritten["id"] == written["id"] and rewritten["is_pinned"] is True
    assert [d["id"] for d in after["items"]] == [written["id"]]


# -- chat through the web port ----------------------------------------------------------------


async def test_conversations_through_the_web_port_and_a_stream_relayed_unbuffered(stack, fake) -> None:
    async with stack() as chat:
        alice = chat.headers["alice"]
        # Alice's own provider is the fake one, so the answer arrives in timed pieces.
        await ok(chat.web.put(CONFIG, headers=alice, json=fake_config(fake)))
        fake.default_reply = Reply(chunks=["第一段", "第二段", "第三段"], chunk_delay=1.0)
        first = await chat.conversation("alice", client=chat.web, title="旅行计划")
        second = await chat.conversation("alice", client=chat.web, title="读书笔记")
        listed = assert_relayed(await each(chat, "GET", CONVERSATIONS, headers=alice), 200)
        renamed = await ok(chat.web.patch(f"{CONVERSATIONS}/{first}", headers=alice, json={"title": "杭州之行"}))

        url = f"{CONVERSATIONS}/{first}/messages"
        events, completed_at_first_delta = [], None
        body = {"content": "帮我想想行程", "stream": True}
        async with chat.web.stream("POST", url, headers=alice, json=body) as response:
            async for event in sse_events(response):
                if event.event == "delta" and completed_at_first_delta is None:
                    completed_at_first_delta = fake.streams_completed
                events.append(event)
        stored = await ok(chat.mobile.get(f"{CONVERSATIONS}/{first}", headers=alice))

        deleted = await chat.web.delete(f"{CONVERSATIONS}/{second}", headers=alice)
        gone = await each(chat, "GET", f"{CONVERSATIONS}/{second}", headers=alice)
        remaining = assert_relayed(await each(chat, "GET", CONVERSATIONS, headers=alice), 200)

    assert [c["id"] for c in listed["items"]] == [second, first]
    assert renamed["id"] == first and renamed["title"] == "杭州之行"
    assert response.status_code == 201  # a question creates a message, streamed or not
    assert response.headers["content-type"].startswith("text/event-stream")
    names = [event.event for event in events if event.event != "comment"]
    assert names == ["delta", "delta", "delta", "done"]
    assert [event.data["text"] for event in events if event.event == "delta"] == ["第一段", "第二段", "第三段"]
    assert completed_at_first_delta == 0, "the first piece waited for the whole answer"
    done = events[-1].data
    assert done["role"] == "assistant" and done["content"] == "第一段第二段第三段"
    assert stored["title"] == "杭州之行" and stored["messages"]["items"][0] == done
    assert deleted.status_code == 204 and deleted.content == b""
    assert_relayed(gone, 404, "not_found")
    assert [c["id"] for c in remaining["items"]] == [first]


# -- redirects --------------------------------------------------------------------------------


async def test_a_redirect_llm_service_makes_to_itself_points_at_the_port_the_client_used(stack) -> None:
    async with stack() as chat:
        alice = chat.headers["alice"]
        await ok(chat.mobile.post(MEMORIES, headers=alice, json={"content": "我住在杭州"}), 201)
        # FastAPI answers a trailing slash with a 307 to the path without it, on its own address.
        direct = await chat.llm.get(f"{MEMORIES}/", headers=alice, params={"limit": 5})
        redirected = {
            port: await getattr(chat, port).get(f"{MEMORIES}/", headers=alice, params={"limit": 5}) for port in PORTS
        }
        followed = {
            port: await getattr(chat, port).get(
                f"{MEMORIES}/", headers=alice, params={"limit": 5}, follow_redirects=True
            )
            for port in PORTS
        }
        listed = await ok(chat.llm.get(MEMORIES, headers=alice, params={"limit": 5}))

    assert direct.status_code == 307 and direct.headers["location"].startswith(str(chat.llm.base_url))
    for port, response in redirected.items():
        assert response.status_code == 307, (port, response.text)
        # Not llm_service's address: clients cannot reach it, and should not learn it.
        assert response.headers["location"] == f"{MEMORIES}?limit=5", port
    for port, response in followed.items():
        assert response.status_code == 200, (port, response.text)
        client_facing = getattr(chat, port).base_url
        assert (response.url.host, response.url.port) == (client_facing.host, client_facing.port), port
        assert response.json() == listed


# -- isolation and bad input ------------------------------------------------------------------


async def test_another_users_ids_are_404_through_each_port_and_change_nothing(stack) -> None:
    async with stack() as chat:
        alice, bob = chat.headers["alice"], chat.headers["bob"]
        memory = await ok(chat.mobile.post(MEMORIES, headers=alice, json={"content": "我对花生过敏"}), 201)
        record = await chat.record("alice", content="周一开会讨论预算。")
        digest = await ok(chat.mobile.post(f"{DIGESTS}/generate", headers=alice, json={"period": "week"}), 201)
        conversation = await chat.conversation("alice", title="预算")
        attempts: dict[str, list[tuple[str, str, dict[str, Any] | None]]] = {
            "memory": [
                ("GET", f"{MEMORIES}/{memory['id']}", None),
                ("PATCH", f"{MEMORIES}/{memory['id']}", {"content": "鲍勃改的"}),
                ("DELETE", f"{MEMORIES}/{memory['id']}", None),
            ],
            "digest": [
                ("GET", f"{DIGESTS}/{digest['id']}", None),
                ("PATCH", f"{DIGESTS}/{digest['id']}", {"is_pinned": True}),
            ],
            "conversation": [
                ("GET", f"{CONVERSATIONS}/{conversation}", None),
                ("GET", f"{CONVERSATIONS}/{conversation}/messages", None),
                ("PATCH", f"{CONVERSATIONS}/{conversation}", {"title": "鲍勃的"}),
                ("POST", f"{CONVERSATIONS}/{conversation}/messages", {"content": "你好"}),
                ("DELETE", f"{CONVERSATIONS}/{conversation}", None),
            ],
            "record": [("POST", f"/api/v1/records/{record['id']}/analyze", None)],
        }
        refused = {
            (kind, method, url): await each(chat, method, url, headers=bob, json=body)
            for kind, requests in attempts.items()
            for method, url, body in requests
        }
        bobs_lists = [await ok(chat.web.get(url, headers=bob)) for url in (MEMORIES, DIGESTS, CONVERSATIONS)]
        memory_after = await ok(chat.web.get(f"{MEMORIES}/{memory['id']}", headers=alice))
        digest_after = await ok(chat.web.get(f"{DIGESTS}/{digest['id']}", headers=alice))
        conversation_after = await ok(chat.web.get(f"{CONVERSATIONS}/{conversation}", headers=alice))
        analyzed = await ok(chat.web.post(f"/api/v1/records/{record['id']}/analyze", headers=alice), 202)

    for responses in refused.values():
        assert_relayed(responses, 404, "not_found")
    assert bobs_lists == [{"items": [], "next_cursor": None}] * 3
    assert memory_after == memory
    assert digest_after == digest
    assert conversation_after["title"] == "预算" and conversation_after["messages"]["items"] == []
    assert analyzed == {"id": record["id"], "status": "pending"}


async def test_bad_input_is_llm_services_own_4xx_through_each_port_and_changes_nothing(stack) -> None:
    async with stack() as chat:
        alice = chat.headers["alice"]
        memory = await ok(chat.mobile.post(MEMORIES, headers=alice, json={"content": "我住在杭州"}), 201)
        conversation = await chat.conversation("alice", title="原来的")
        json_body = {**alice, "Content-Type": "application/json"}
        cases: list[tuple[str, str, dict[str, Any], int, str]] = [
            ("POST", MEMORIES, {"json": {"content": ""}}, 422, "validation_error"),
            ("POST", MEMORIES, {"json": {"content": "x", "importance": 2}}, 422, "validation_error"),
            ("POST", MEMORIES, {"json": {"content": "x", "owner_id": "someone"}}, 422, "validation_error"),
            ("POST", MEMORIES, {"content": b"{not json", "headers": json_body}, 422, "validation_error"),
            ("PATCH", f"{MEMORIES}/{memory['id']}", {"json": {"content": None}}, 422, "validation_error"),
            ("GET", MEMORIES, {"params": {"cursor": "garbage"}}, 422, "validation_error"),
            ("GET", MEMORIES, {"params": {"limit": 0}}, 422, "validation_error"),
            ("POST", f"{DIGESTS}/generate", {"json": {"period": "month"}}, 422, "validation_error"),
            ("POST", f"{DIGESTS}/generate", {"json": {"period": "day", "date": "0001-01-01"}}, 422, "validation_error"),
            ("PATCH", f"{DIGESTS}/{UNKNOWN_ID}", {"json": {"is_read": None}}, 422, "validation_error"),
            ("GET", DIGESTS, {"params": {"period": "year"}}, 422, "validation_error"),
            ("PATCH", f"{CONVERSATIONS}/{conversation}", {"json": {"title": 42}}, 422, "validation_error"),
            ("POST", f"{CONVERSATIONS}/{conversation}/messages", {"json": {"content": ""}}, 422, "validation_error"),
            ("PUT", CONFIG, {"json": {"provider": "skynet"}}, 422, "validation_error"),
            (
                "PUT",
                CONFIG,
                {"json": {"provider": "custom", "base_url": UNLISTED_LOOPBACK, "model": "m"}},
                422,
                "validation_error",
            ),
            ("GET", CONFIG, {"params": {"scope": "everyone"}}, 422, "validation_error"),
            ("GET", "/api/v1/llm/no-such-thing", {}, 404, "not_found"),
            ("DELETE", PRESETS, {}, 405, "method_not_allowed"),
        ]
        answers = [
            (await each(chat, method, url, **{"headers": alice, **kwargs}), status, code)
            for method, url, kwargs, status, code in cases
        ]
        memories_after = await ok(chat.mobile.get(MEMORIES, headers=alice))
        conversation_after = await ok(chat.web.get(f"{CONVERSATIONS}/{conversation}", headers=alice))
        config_after = await ok(chat.mobile.get(CONFIG, headers=alice))
        digests_after = await ok(chat.web.get(DIGESTS, headers=alice))

    for responses, status, code in answers:
        assert_relayed(responses, status, code)
    assert memories_after["items"] == [memory]
    assert conversation_after["title"] == "原来的" and conversation_after["messages"]["items"] == []
    assert config_after["source"] == "default"
    assert digests_after["items"] == []
