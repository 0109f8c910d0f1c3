"""Chat through the mobile and web ports: conversations, grounded answers (offline and through
the fake remote provider), streaming relayed unbuffered, provider faults, ephemeral
conversations that expire, isolation between users."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.ai.models import ChatMessage, Conversation, Memory
from common.database import utcnow
from llm_service.app.chat import service as chat_service
from llm_service.tests.chat_stack import (
    ANALYSIS,
    ChatStack,
    answer_requests,
    chat_stack,
    chat_text,
    remote,
    sse_events,
)
from llm_service.tests.fake_provider import UPSTREAM_MARKER, Reply

MEETING = "今天下午开会讨论预算，决定削减广告费用。"
COFFEE = "买了新的咖啡机，周末试试手冲。"
QUESTION = "开会讨论了什么？"
UNKNOWN_ID = "01a2001e-0000-7000-8000-000000000000"


@pytest.fixture
def stack(make_settings: Callable[..., Any], migrated_database_url: str, redis: Any) -> Callable[..., Any]:
    """`async with stack(**llm_settings) as chat:` — the services on one database and Redis."""

    def build(**llm: Any) -> Any:
        return chat_stack(make_settings, migrated_database_url, **llm)

    return build


async def count(chat: ChatStack, statement: Any) -> int:
    async with chat.engine.connect() as connection:
        return int((await connection.execute(statement)).scalar_one())


def events_named(events: list[Any], name: str) -> list[Any]:
    return [event.data for event in events if event.event == name]


# -- conversations ------------------------------------------------------------------------


async def test_conversations_are_listed_paged_renamed_and_deleted(stack) -> None:
    async with stack() as chat:
        alice = chat.headers["alice"]
        ids = [await chat.conversation("alice", title=f"topic {n}") for n in range(3)]
        ephemeral = await chat.conversation("alice", ephemeral=True)
        other = await chat.conversation("bob", title="bob's")

        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await chat.mobile.get("/api/v1/chat/conversations", headers=alice, params=params)).json()
            seen += page["items"]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break

        assert pages == 2
        assert [c["id"] for c in seen] == [ephemeral, *reversed(ids)]  # last used first
        assert [c["ephemeral"] for c in seen] == [True, False, False, False]
        assert set(seen[0]) == {"id", "title", "ephemeral", "created_at", "updated_at"}

        renamed = await chat.web.patch(f"/api/v1/chat/conversations/{ids[0]}", headers=alice, json={"title": "新名字"})
        assert renamed.status_code == 200 and renamed.json()["title"] == "新名字"
        detail = await chat.mobile.get(f"/api/v1/chat/conversations/{ids[0]}", headers=alice)
        assert detail.status_code == 200
        assert detail.json()["title"] == "新名字"
        assert detail.json()["messages"] == {"items": [], "next_cursor": None}
        listed = (await chat.mobile.get("/api/v1/chat/conversations", headers=alice)).json()["items"]
        assert listed[0]["id"] == ids[0]  # renaming is a use
        assert other not in [c["id"] for c in listed]

        deleted = await chat.mobile.delete(f"/api/v1/chat/conversations/{ids[1]}", headers=alice)
        assert deleted.status_code == 204
        assert (await chat.mobile.get(f"/api/v1/chat/conversations/{ids[1]}", headers=alice)).status_code == 404
        assert await count(chat, select(func.count()).where(Conversation.id == ids[1])) == 0


async def test_a_conversation_and_its_messages_are_gone_after_delete(stack) -> None:
    async with stack() as chat:
        await chat.record("alice", content=MEETING)
        conversation = await chat.conversation("alice")
        assert (await chat.ask("alice", conversation, QUESTION)).status_code == 201
        assert await count(chat, select(func.count()).where(ChatMessage.conversation_id == conversation)) == 2

        deleted = await chat.mobile.delete(f"/api/v1/chat/conversations/{conversation}", headers=chat.headers["alice"])

        assert deleted.status_code == 204
        assert await count(chat, select(func.count()).where(ChatMessage.conversation_id == conversation)) == 0
        gone = await chat.ask("alice", conversation, QUESTION)
        assert gone.status_code == 404


async def test_another_users_conversation_is_404_everywhere(stack) -> None:
    async with stack() as chat:
        kept = await chat.conversation("alice", title="mine")
        ephemeral = await chat.conversation("alice", ephemeral=True)
        bob = chat.headers["bob"]

        for conversation in (kept, ephemeral, UNKNOWN_ID, "not:a-key", "x" * 65):
            base = f"/api/v1/chat/conversations/{conversation}"
            answers = [
                await chat.mobile.get(base, headers=bob),
                await chat.mobile.get(f"{base}/messages", headers=bob),
                await chat.web.patch(base, headers=bob, json={"title": "taken"}),
                await chat.mobile.post(f"{base}/messages", headers=bob, json={"content": "你好"}),
                await chat.mobile.post(f"{base}/messages", headers=bob, json={"content": "你好", "stream": True}),
                await chat.web.delete(base, headers=bob),
            ]
            for answer in answers:
                assert answer.status_code == 404, (conversation, answer.request.method, answer.text)
                assert answer.json()["error"] == "not_found"

        for conversation in (kept, ephemeral):  # untouched
            mine = await chat.mobile.get(f"/api/v1/chat/conversations/{conversation}", headers=chat.headers["alice"])
            assert mine.status_code == 200 and mine.json()["title"] == "mine" * (conversation == kept)
        assert (await chat.mobile.get("/api/v1/chat/conversations", headers=bob)).json()["items"] == []


async def test_bad_input_is_a_clear_4xx(stack) -> None:
    async with stack() as chat:
        alice = chat.headers["alice"]
        conversation = await chat.conversation("alice")
        base = "/api/v1/chat/conversations"
        messages = f"{base}/{conversation}/messages"
        cases = [
            ("POST", base, {"title": "x", "colour": "red"}, 422),
            ("POST", base, {"title": "x" * 201}, 422),
            ("POST", base, {"ephemeral": "perhaps"}, 422),
            ("POST", base, {"ephemeral": 0}, 422),  # lax booleans (found by tests/fuzz)
            ("PATCH", f"{base}/{conversation}", {"title": "   "}, 422),
            ("PATCH", f"{base}/{conversation}", {}, 422),
            ("POST", messages, {"content": ""}, 422),
            ("POST", messages, {"content": "   \n"}, 422),
            ("POST", messages, {"content": "问" * 4001}, 422),
            ("POST", messages, {"content": "hi", "temperature": 2}, 422),
            ("POST", messages, {"content": "hi", "stream": [1]}, 422),
            ("POST", messages, {"content": "hi", "stream": 1}, 422),
            ("POST", messages, {"content": "hi", "stream": "true"}, 422),
            ("POST", messages, {"content": 42}, 422),
        ]
        for method, url, body, status in cases:
            response = await chat.mobile.request(method, url, headers=alice, json=body)
            assert response.status_code == status, (method, url, body, response.text)
            assert response.json()["error"] == "validation_error"
        not_json = await chat.mobile.post(messages, headers={**alice, "Content-Type": "application/json"}, content="{")
        assert not_json.status_code == 422
        assert (await chat.mobile.get(base, headers=alice, params={"cursor": "garbage"})).status_code == 422
        assert (await chat.mobile.get(base, headers=alice, params={"limit": 0})).status_code == 422
        assert (
            await chat.mobile.get(f"{base}/{conversation}", headers=alice, params={"limit": 999})
        ).status_code == 422
        assert (await chat.mobile.get(base)).status_code == 401
        assert (await chat.mobile.post(messages, json={"content": "hi"})).status_code == 401
        assert await count(chat, select(func.count()).select_from(ChatMessage)) == 0


# -- answers with the offline provider -----------------------------------------------------


async def test_the_offline_provider_answers_from_the_users_own_record_and_cites_it(stack) -> None:
    async with stack() as chat:
        meeting = await chat.record("alice", content=MEETING)
        await chat.record("alice", content=COFFEE)
        bobs = await chat.record("bob", content="上午开会讨论了裁员名单。")
        conversation = await chat.conversation("alice")

        response = await chat.ask("alice", conversation, QUESTION)

        assert response.status_code == 201, response.text
        answer = response.json()
        assert set(answer) == {"id", "role", "content", "citations", "created_at"}
        assert answer["role"] == "assistant"
        assert answer["citations"] == [meeting["id"]]
        assert "离线模式" in answer["content"] and "预算" in answer["content"]
        assert (
            "咖啡" not in answer["content"] and "裁员" not in answer["content"] and bobs["id"] not in answer["content"]
        )

        detail = (
            await chat.web.get(f"/api/v1/chat/conversations/{conversation}", headers=chat.headers["alice"])
        ).json()
        assert detail["title"] == QUESTION  # named after its first question
        assert [(m["role"], m["content"]) for m in detail["messages"]["items"]] == [
            ("assistant", answer["content"]),
            ("user", QUESTION),
        ]
        assert detail["messages"]["items"][0] == answer


async def test_messages_are_paged_newest_first(stack) -> None:
    async with stack() as chat:
        await chat.record("alice", content=MEETING)
        conversation = await chat.conversation("alice")
        for question in ("开会讨论了什么？", "预算呢？", "广告费用呢？"):
            assert (await chat.ask("alice", conversation, question)).status_code == 201

        seen, cursor = [], None
        while True:
            params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
            url = f"/api/v1/chat/conversations/{conversation}/messages"
            page = (await chat.mobile.get(url, headers=chat.headers["alice"], params=params)).json()
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break

        assert len(seen) == 6 and len({m["id"] for m in seen}) == 6
        assert [m["role"] for m in seen] == ["assistant", "user"] * 3
        assert [m["content"] for m in seen if m["role"] == "user"] == ["广告费用呢？", "预算呢？", "开会讨论了什么？"]


async def test_the_offline_provider_may_quote_an_opted_out_record(stack) -> None:
    async with stack() as chat:
        private = await chat.record("alice", content=MEETING, ai_opt_out=True)
        conversation = await chat.conversation("alice")

        answer = (await chat.ask("alice", conversation, QUESTION)).json()

        assert answer["citations"] == [private["id"]]  # it never leaves the machine


@pytest.mark.parametrize("port", ["mobile", "web"])
async def test_a_streamed_answer_through_each_port_is_deltas_then_the_stored_message(stack, port) -> None:
    async with stack() as chat:
        client = getattr(chat, port)
        meeting = await chat.record("alice", content=MEETING)
        await chat.record("alice", content=COFFEE)
        conversation = await chat.conversation("alice", client=client)

        response, events = await chat.ask_streaming("alice", conversation, QUESTION, client=client)

        assert response.status_code == 201
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        names = [event.event for event in events if event.event != "comment"]
        assert names[-1] == "done" and set(names[:-1]) == {"delta"} and len(names) >= 3
        done = events_named(events, "done")[0]
        assert "".join(d["text"] for d in events_named(events, "delta")) == done["content"]
        assert done["role"] == "assistant" and done["citations"] == [meeting["id"]]
        stored = (await client.get(f"/api/v1/chat/conversations/{conversation}", headers=chat.headers["alice"])).json()
        assert stored["messages"]["items"][0] == done


async def test_a_question_answers_201_streamed_or_not_on_every_port(stack) -> None:
    """A question creates a message either way, so both answer 201 (JSON, or the stream whose
    `done` event carries the message); the OpenAPI says so under one status."""
    async with stack() as chat:
        await chat.record("alice", content=MEETING)
        for client in (chat.llm, chat.mobile, chat.web):
            conversation = await chat.conversation("alice", client=client)

            plain = await chat.ask("alice", conversation, QUESTION, client=client)
            streamed, events = await chat.ask_streaming("alice", conversation, QUESTION, client=client)

            assert plain.status_code == streamed.status_code == 201, (plain.text, client.base_url)
            assert plain.headers["content-type"].startswith("application/json")
            assert streamed.headers["content-type"].startswith("text/event-stream")
            assert plain.json()["role"] == events_named(events, "done")[0]["role"] == "assistant"

        schema = (await chat.llm.get("/openapi.json")).json()
        operation = schema["paths"]["/api/v1/chat/conversations/{conversation_id}/messages"]["post"]
        assert "200" not in operation["responses"]
        assert set(operation["responses"]["201"]["content"]) == {"application/json", "text/event-stream"}


# -- answers through the (fake) remote provider ---------------------------------------------


async def test_remote_answers_stream_the_providers_chunks_and_cite_only_given_records(stack, fake) -> None:
    fake.default_reply = Reply(text=ANALYSIS)
    async with stack(**remote(fake)) as chat:
        first = await chat.record("alice", content="周一开会讨论预算，市场部要加钱。")
        second = await chat.record("alice", content="预算会议纪要：广告费用削减两成。")
        private = await chat.record("alice", content="预算里藏着斑马基金的秘密。", ai_opt_out=True)
        coffee = await chat.record("alice", content=COFFEE)
        bobs = await chat.record("bob", content="预算讨论：鲍勃的河马计划。")
        chunks = [
            "根据记录",
            "[1]和[2]，",
            "预算被削减。",
            f"另见[3][{bobs['id']}]",
            f"[{private['id']}][{coffee['id']}]",
        ]
        # The default, not a script: analysis jobs still running may call the provider too.
        fake.default_reply = Reply(chunks=chunks)
        conversation = await chat.conversation("alice")

        response, events = await chat.ask_streaming("alice", conversation, "预算讨论了什么？")

        assert response.status_code == 201
        assert [d["text"] for d in events_named(events, "delta")] == chunks
        done = events_named(events, "done")[0]
        assert done["content"] == "".join(chunks)
        assert set(done["citations"]) == {first["id"], second["id"]}
        sent = chat_text(fake)
        assert "市场部要加钱" in sent and "广告费用削减两成" in sent
        assert "河马" not in sent, "another user's record reached the provider"
        assert "斑马" not in fake.received_text(), "an opted-out record reached the provider"


async def test_opted_out_records_do_not_take_the_places_of_remote_context(stack, fake) -> None:
    """More opted-out records with every word than there are places: the search leaves them
    out, so an allowed record with fewer of the words still reaches the provider."""
    fake.default_reply = Reply(text=ANALYSIS)
    async with stack(**remote(fake)) as chat:
        for n in range(6):  # RECORDS_IN_CONTEXT
            await chat.record("alice", content=f"预算 广告 marketing 安排：斑马秘密第{n}号。", ai_opt_out=True)
        allowed = await chat.record("alice", content="预算和广告：河马方案公开。")
        await chat.record("alice", content=COFFEE)
        fake.default_reply = Reply(chunks=["见[1]。"])
        conversation = await chat.conversation("alice")

        response, events = await chat.ask_streaming("alice", conversation, "预算 广告 marketing 怎么安排？")

        assert response.status_code == 201
        assert events_named(events, "done")[0]["citations"] == [allowed["id"]]
        sent = chat_text(fake)
        assert "河马方案公开" in sent, "an opted-out record took the allowed record's place"
        assert "斑马" not in fake.received_text(), "an opted-out record reached the provider"
        assert "咖啡机" not in sent


async def test_the_recent_turns_are_given_as_history_from_the_redis_window(stack, fake, redis) -> None:
    async with stack(**remote(fake)) as chat:
        conversation = await chat.conversation("alice")
        # Defaults, not a script: each turn's memory extraction also calls the provider, at
        # its own pace, and must not take the next answer's reply.
        for question, reply in (("第一个问题是什么", "第一个回答"), ("第二个问题", "第二个回答")):
            fake.default_reply = Reply(text=reply)
            assert (await chat.ask("alice", conversation, question)).status_code == 201
        window = f"jilu:chat:ctx:{conversation}"
        assert await redis.llen(window) == 4 and 0 < await redis.ttl(window)
        async with chat.engine.begin() as connection:  # the window must come from Redis now
            await connection.execute(delete(ChatMessage).where(ChatMessage.conversation_id == conversation))

        fake.default_reply = Reply(text="第三个回答")
        assert (await chat.ask("alice", conversation, "第三个问题")).status_code == 201

        last = answer_requests(fake)[-1].json["messages"]
        assert [(m["role"], m["content"]) for m in last[1:]] == [
            ("user", "第一个问题是什么"),
            ("assistant", "第一个回答"),
            ("user", "第二个问题"),
            ("assistant", "第二个回答"),
            ("user", "第三个问题"),
        ]


async def test_memories_ground_the_answer_only_the_owners_and_unexpired(stack, fake) -> None:
    async with stack(**remote(fake)) as chat:
        alice, bob = chat.user_ids["alice"], chat.user_ids["bob"]
        private = await chat.record("alice", content="不要外传的记录", ai_opt_out=True)
        past = utcnow() - timedelta(days=1)
        rows = [
            Memory(owner_id=alice, content="我对花生过敏", content_key="a1", importance=0.9),
            Memory(owner_id=alice, content="我明天去北京出差", content_key="a2", expires_at=past),
            Memory(
                owner_id=alice,
                content="我养了一只叫团子的猫",
                content_key="a3",
                source="record",
                source_id=private["id"],
            ),
            Memory(owner_id=bob, content="我住在杭州", content_key="b1", importance=1.0),
        ]
        async with chat.engine.connect() as connection:
            async with AsyncSession(bind=connection) as session:
                session.add_all(rows)
                await session.commit()
            await connection.commit()
        conversation = await chat.conversation("alice")

        assert (await chat.ask("alice", conversation, "我能吃什么零食？")).status_code == 201

        sent = chat_text(fake)
        assert "花生过敏" in sent
        assert "北京出差" not in sent and "杭州" not in sent and "团子" not in sent


async def test_the_first_token_reaches_the_client_while_the_provider_is_still_answering(stack, fake) -> None:
    async with stack(**remote(fake)) as chat:
        fake.script(Reply(chunks=["第一段", "第二段", "第三段"], chunk_delay=1.0))
        conversation = await chat.conversation("alice")
        url = f"/api/v1/chat/conversations/{conversation}/messages"
        finished_when_first_arrived = None
        texts = []

        body = {"content": "你好", "stream": True}
        async with chat.mobile.stream("POST", url, headers=chat.headers["alice"], json=body) as response:
            async for event in sse_events(response):
                if event.event == "delta":
                    if finished_when_first_arrived is None:
                        finished_when_first_arrived = fake.streams_completed
                    texts.append(event.data["text"])

        assert texts == ["第一段", "第二段", "第三段"]
        assert finished_when_first_arrived == 0, "the first token waited for the whole answer"
        assert fake.streams_completed == 1


async def test_heartbeats_keep_a_quiet_stream_alive(stack, fake, monkeypatch) -> None:
    monkeypatch.setattr(chat_service, "HEARTBEAT_SECONDS", 0.2)
    async with stack(**remote(fake)) as chat:
        fake.script(Reply(chunks=["好的"], first_token_delay=1.5))
        conversation = await chat.conversation("alice")

        _, events = await chat.ask_streaming("alice", conversation, "你好")

        names = [event.event for event in events]
        assert "comment" in names and names.index("comment") < names.index("delta")
        assert events_named(events, "comment")[0] == "ping"
        assert names[-1] == "done"


async def test_a_client_that_disconnects_cancels_the_provider_call(stack, fake) -> None:
    async with stack(**remote(fake)) as chat:
        fake.script(Reply(chunks=[f"片段{n}" for n in range(20)], chunk_delay=0.5))
        conversation = await chat.conversation("alice")
        url = f"/api/v1/chat/conversations/{conversation}/messages"

        body = {"content": "讲个长故事", "stream": True}
        async with chat.mobile.stream("POST", url, headers=chat.headers["alice"], json=body) as response:
            async for event in sse_events(response):
                if event.event == "delta":
                    break  # leaving the block closes the connection mid-answer

        for _ in range(150):
            if fake.streams_cancelled:
                break
            await asyncio.sleep(0.1)
        assert fake.streams_cancelled == 1 and fake.streams_completed == 0
        detail = (
            await chat.mobile.get(f"/api/v1/chat/conversations/{conversation}", headers=chat.headers["alice"])
        ).json()
        assert detail["messages"]["items"] == []  # an abandoned answer stores nothing
        fake.script(Reply(text="还在"))
        assert (await chat.ask("alice", conversation, "你还在吗")).json()["content"] == "还在"


FAULTS = {
    "server error": Reply.error(500, headers={"Retry-After": "0"}),
    "rate limited": Reply.rate_limited(retry_after="0"),
    "html page": Reply.html(),
    "malformed json": Reply.malformed(),
    "error mid-stream": Reply(chunks=["部分", "回答"], error_after=1),
    "dropped connection": Reply(chunks=["部分", "回答"], drop_after=1),
    "far too large": Reply.too_large(),
}


async def test_provider_faults_answer_502_and_the_next_question_works(stack, fake) -> None:
    async with stack(**remote(fake)) as chat:
        conversation = await chat.conversation("alice")
        for name, fault in FAULTS.items():
            fake.default_reply = fault

            failed = await chat.ask("alice", conversation, "你好")

            assert failed.status_code == 502, (name, failed.text)
            assert failed.json()["error"] == "llm_provider_error", name
            assert UPSTREAM_MARKER not in failed.text
            fake.default_reply = Reply(text="恢复了")
            recovered = await chat.ask("alice", conversation, "再试一次")
            assert recovered.status_code == 201 and recovered.json()["content"] == "恢复了", name

        items = (
            await chat.mobile.get(f"/api/v1/chat/conversations/{conversation}", headers=chat.headers["alice"])
        ).json()
        assert [m["content"] for m in items["messages"]["items"] if m["role"] == "user"] == ["再试一次"] * len(FAULTS)


async def test_provider_faults_in_a_stream_are_an_error_event_and_the_next_question_works(stack, fake) -> None:
    async with stack(**remote(fake)) as chat:
        conversation = await chat.conversation("alice")
        for name, fault in FAULTS.items():
            fake.default_reply = fault

            response, events = await chat.ask_streaming("alice", conversation, "你好", client=chat.web)

            assert response.status_code == 201, name
            assert [event.event for event in events if event.event not in ("delta", "comment")] == ["error"], name
            error = events_named(events, "error")[0]
            assert set(error) == {"error", "detail"} and error["error"] == "llm_provider_error", (name, error)
            assert UPSTREAM_MARKER not in json.dumps(error, ensure_ascii=False)
            fake.default_reply = Reply(text="恢复了")
            _, events = await chat.ask_streaming("alice", conversation, "再试一次", client=chat.web)
            assert events_named(events, "done")[0]["content"] == "恢复了", name


async def test_a_provider_slower_than_the_timeout_is_a_504_or_an_error_event(stack, fake) -> None:
    async with stack(**remote(fake, http_timeout=1.0)) as chat:
        conversation = await chat.conversation("alice")

        fake.script(Reply(delay=4))
        slow = await chat.ask("alice", conversation, "你好")
        fake.script(Reply(first_token_delay=4))
        _, events = await chat.ask_streaming("alice", conversation, "你好")

        assert slow.status_code == 504 and slow.json()["error"] == "llm_provider_timeout"
        assert events_named(events, "error") == [
            {"error": "llm_provider_timeout", "detail": "The LLM provider stopped sending its answer"}
        ]
        assert (await chat.ask("alice", conversation, "还在吗")).status_code == 201


# -- ephemeral conversations ----------------------------------------------------------------


async def test_an_ephemeral_conversation_lives_only_in_redis_and_expires(stack, redis) -> None:
    async with stack(chat_ttl=2) as chat:
        alice = chat.headers["alice"]
        meeting = await chat.record("alice", content=MEETING)
        warm = await chat.conversation("alice")  # the first answer loads jieba: not on the clock below
        assert (await chat.ask("alice", warm, QUESTION)).status_code == 201

        created = await chat.mobile.post("/api/v1/chat/conversations", headers=alice, json={"ephemeral": True})
        assert created.status_code == 201 and created.json()["ephemeral"] is True
        conversation = created.json()["id"]
        answer = await chat.ask("alice", conversation, QUESTION)
        assert answer.status_code == 201 and answer.json()["citations"] == [meeting["id"]]
        detail = (await chat.mobile.get(f"/api/v1/chat/conversations/{conversation}", headers=alice)).json()
        assert [m["role"] for m in detail["messages"]["items"]] == ["assistant", "user"]
        assert await count(chat, select(func.count()).where(Conversation.id == conversation)) == 0
        assert await count(chat, select(func.count()).where(ChatMessage.conversation_id == conversation)) == 0
        key = f"jilu:chat:eph:{conversation}"
        assert 0 < await redis.pttl(key) <= 2000

        await asyncio.sleep(1.2)  # a use slides the expiry forward
        assert await redis.pttl(key) < 1000
        assert (await chat.mobile.get(f"/api/v1/chat/conversations/{conversation}", headers=alice)).status_code == 200
        assert await redis.pttl(key) > 1000

        await asyncio.sleep(2.5)
        assert (await chat.mobile.get(f"/api/v1/chat/conversations/{conversation}", headers=alice)).status_code == 404
        listed = (await chat.mobile.get("/api/v1/chat/conversations", headers=alice)).json()["items"]
        assert [c["id"] for c in listed] == [warm]
        assert not await redis.exists(key, f"{key}:messages")


async def test_an_ephemeral_stream_and_its_deletion(stack) -> None:
    async with stack() as chat:
        alice = chat.headers["alice"]
        await chat.record("alice", content=MEETING)
        conversation = await chat.conversation("alice", client=chat.web, ephemeral=True)

        _, events = await chat.ask_streaming("alice", conversation, QUESTION, client=chat.web)
        done = events_named(events, "done")[0]
        detail = (await chat.web.get(f"/api/v1/chat/conversations/{conversation}", headers=alice)).json()
        assert detail["messages"]["items"][0] == done and detail["title"] == QUESTION

        assert (await chat.web.delete(f"/api/v1/chat/conversations/{conversation}", headers=alice)).status_code == 204
        assert (await chat.web.get(f"/api/v1/chat/conversations/{conversation}", headers=alice)).status_code == 404


# -- limits --------------------------------------------------------------------------------


async def test_questions_are_rate_limited_per_user(stack) -> None:
    async with stack() as chat:
        conversation = await chat.conversation("alice")
        statuses = [(await chat.ask("alice", conversation, f"问题{n}")).status_code for n in range(30)]
        limited = await chat.ask("alice", conversation, "再问一个")
        bobs = await chat.ask("bob", await chat.conversation("bob"), "我的问题")

        assert statuses == [201] * 30
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert bobs.status_code == 201


async def test_a_used_up_budget_refuses_remote_answers_with_429(stack, fake) -> None:
    async with stack(**remote(fake, llm_daily_requests=1)) as chat:
        conversation = await chat.conversation("alice")
        assert (await chat.ask("alice", conversation, "你好")).status_code == 201

        refused = await chat.ask("alice", conversation, "再问")
        streamed, _ = await chat.ask_streaming("alice", conversation, "再问")

        assert refused.status_code == 429 and refused.json()["error"] == "budget_exceeded"
        assert streamed.status_code == 429
        assert len(answer_requests(fake)) == 1
