"""Memories: the user's CRUD, dedupe and reinforcement, extraction from analysed records and
from chat turns (offline and through the fake remote provider), decay and expiry.

user_service, mobile_service (records) and llm_service (its analysis workers on the test's
event loop) run in-process on one database and Redis; the remote provider is the fake one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from common.ai.models import Memory
from common.database import Sessions
from llm_service.app.deps import llm_state
from llm_service.app.memories import from_chat
from llm_service.app.memories.service import content_key, remember_from_text, remember_one
from llm_service.tests.chat_stack import answer_requests, memory_requests
from llm_service.tests.fake_provider import UPSTREAM_MARKER, Reply
from llm_service.tests.llm_stack import LlmStack, queue_drained, remote_settings
from tests.support import assert_error

MEMORIES = "/api/v1/memories"
CONVERSATIONS = "/api/v1/chat/conversations"
UNKNOWN_ID = "01a2001e-0000-7000-8000-000000000000"


def sessions_of(stack: LlmStack) -> Sessions:
    state = llm_state(stack.llm_app)
    return Sessions(read=state.sessionmaker, write=state.write_sessionmaker)


async def add(stack: LlmStack, user: str = "alice", expect: int = 201, **body: Any) -> dict[str, Any]:
    response = await stack.llm.post(MEMORIES, headers=stack.auth(user), json=body)
    assert response.status_code == expect, response.text
    return response.json()


async def listed(stack: LlmStack, user: str = "alice", **params: Any) -> list[dict[str, Any]]:
    response = await stack.llm.get(MEMORIES, headers=stack.auth(user), params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def rows(stack: LlmStack) -> dict[str, Memory]:
    """Every memory in the database (expired ones included), by content."""
    async with llm_state(stack.llm_app).sessionmaker() as session:
        return {m.content: m for m in (await session.execute(select(Memory))).scalars()}


async def wait_for_memory(stack: LlmStack, needle: str, user: str = "alice") -> dict[str, Any]:
    for _ in range(240):
        for memory in await listed(stack, user):
            if needle in memory["content"]:
                return memory
        await asyncio.sleep(0.25)
    raise AssertionError(f"no memory with {needle!r} appeared")


async def wait_until_queue_drained(stack: LlmStack) -> None:
    await queue_drained(llm_state(stack.llm_app).redis)


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- the user's CRUD ---------------------------------------------------------------------


async def test_a_user_adds_reads_edits_and_deletes_a_memory(stack) -> None:
    before = datetime.now(UTC)
    created = await add(stack, content="  I drink green tea every morning.  ")

    assert created["content"] == "I drink green tea every morning."
    assert created["importance"] == 0.7 and created["long_term"] is True
    assert created["source"] == "user" and created["source_id"] is None and created["expires_at"] is None
    read = await stack.llm.get(f"{MEMORIES}/{created['id']}", headers=stack.auth("alice"))
    assert read.status_code == 200 and read.json() == created
    assert [m["id"] for m in await listed(stack)] == [created["id"]]

    edited = await stack.llm.patch(
        f"{MEMORIES}/{created['id']}", headers=stack.auth("alice"), json={"importance": 0.2, "long_term": False}
    )
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert body["importance"] == 0.2 and body["long_term"] is False
    expires = at(body["expires_at"])
    assert before + timedelta(days=7) <= expires <= datetime.now(UTC) + timedelta(days=7)
    assert [m["id"] for m in await listed(stack, long_term="false")] == [created["id"]]
    assert await listed(stack, long_term="true") == []

    back = await stack.llm.patch(f"{MEMORIES}/{created['id']}", headers=stack.auth("alice"), json={"long_term": True})
    assert back.json()["long_term"] is True and back.json()["expires_at"] is None

    deleted = await stack.llm.delete(f"{MEMORIES}/{created['id']}", headers=stack.auth("alice"))
    assert deleted.status_code == 204
    assert_error(await stack.llm.get(f"{MEMORIES}/{created['id']}", headers=stack.auth("alice")), 404, "not_found")
    assert await listed(stack) == []
    assert await rows(stack) == {}


async def test_the_list_is_paginated_most_recently_changed_first(stack) -> None:
    ids = [(await add(stack, content=f"Fact number {i}."))["id"] for i in range(5)]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await stack.llm.get(MEMORIES, headers=stack.auth("alice"), params=params)
        assert response.status_code == 200
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [m["id"] for m in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert pages == 3

    again = await add(stack, expect=200, content="fact NUMBER 1")  # reinforced: changed most recently
    assert again["id"] == ids[1]
    assert (await listed(stack))[0]["id"] == ids[1]


async def test_expired_short_term_memories_are_hidden_and_stating_them_again_revives_them(stack) -> None:
    plan = await add(stack, content="Going to Shanghai next Wednesday.", long_term=False)
    keep = await add(stack, content="Likes jasmine tea.")
    async with llm_state(stack.llm_app).write_sessionmaker() as session, session.begin():
        past = datetime.now(UTC) - timedelta(minutes=1)
        await session.execute(update(Memory).where(Memory.id == plan["id"]).values(expires_at=past))

    assert [m["id"] for m in await listed(stack)] == [keep["id"]]
    assert_error(await stack.llm.get(f"{MEMORIES}/{plan['id']}", headers=stack.auth("alice")), 404, "not_found")
    hidden = await stack.llm.patch(f"{MEMORIES}/{plan['id']}", headers=stack.auth("alice"), json={"importance": 1})
    assert_error(hidden, 404, "not_found")

    revived = await add(stack, content="Going to Shanghai next Wednesday.", long_term=False, importance=0.3)
    assert revived["id"] == plan["id"]
    assert revived["importance"] == 0.3
    assert at(revived["expires_at"]) > datetime.now(UTC) + timedelta(days=6)
    assert {m["id"] for m in await listed(stack)} == {plan["id"], keep["id"]}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"content": ""},
        {"content": "   "},
        {"content": "x" * 501},
        {"content": "nul \x00 inside"},
        {"content": "fine", "importance": 1.5},
        {"content": "fine", "importance": -0.1},
        {"content": "fine", "importance": "high"},
        {"content": "fine", "long_term": "maybe"},
        {"content": "fine", "long_term": 0},  # lax booleans (found by tests/fuzz)
        {"content": "fine", "long_term": "true"},
        {"content": "fine", "source": "record"},
        {"content": "fine", "expires_at": "2030-01-01T00:00:00Z"},
        {"content": ["a list"]},
    ],
)
async def test_bad_new_memories_get_a_422_and_nothing_is_stored(stack, body) -> None:
    response = await stack.llm.post(MEMORIES, headers=stack.auth("alice"), json=body)

    problems = assert_error(response, 422, "validation_error")
    assert isinstance(problems, list) and problems
    assert await rows(stack) == {}


@pytest.mark.parametrize(
    "body",
    [
        {"content": None},
        {"importance": None},
        {"long_term": None},
        {"long_term": 1},
        {"content": ""},
        {"importance": 2},
        {"source": "user"},
        {"content_key": "x"},
    ],
)
async def test_bad_edits_get_a_422_naming_the_field_and_change_nothing(stack, body) -> None:
    memory = await add(stack, content="Has a cat named Mochi.")

    response = await stack.llm.patch(f"{MEMORIES}/{memory['id']}", headers=stack.auth("alice"), json=body)

    problems = assert_error(response, 422, "validation_error")
    assert isinstance(problems, list) and any(next(iter(body)) in p["field"] for p in problems), problems
    assert (await listed(stack))[0] == memory


async def test_bad_list_parameters_are_4xx(stack) -> None:
    headers = stack.auth("alice")
    assert_error(await stack.llm.get(MEMORIES, headers=headers, params={"limit": 0}), 422, "validation_error")
    assert_error(await stack.llm.get(MEMORIES, headers=headers, params={"limit": 201}), 422, "validation_error")
    assert_error(await stack.llm.get(MEMORIES, headers=headers, params={"long_term": "maybe"}), 422, "validation_error")
    assert_error(await stack.llm.get(MEMORIES, headers=headers, params={"cursor": "garbage"}), 422, "validation_error")
    assert_error(await stack.llm.get(MEMORIES), 401, "unauthorized")
    odd = await stack.llm.get(f"{MEMORIES}/%00", headers=headers)
    assert_error(odd, 404, "not_found")


async def test_another_users_memory_is_404_on_every_route_and_never_listed(stack) -> None:
    mine = await add(stack, content="Allergic to shellfish.", importance=0.9)
    url = f"{MEMORIES}/{mine['id']}"
    bob = stack.auth("bob")

    assert_error(await stack.llm.get(url, headers=bob), 404, "not_found")
    assert_error(await stack.llm.patch(url, headers=bob, json={"content": "hacked"}), 404, "not_found")
    assert_error(await stack.llm.delete(url, headers=bob), 404, "not_found")
    assert_error(await stack.llm.get(f"{MEMORIES}/{UNKNOWN_ID}", headers=bob), 404, "not_found")
    assert await listed(stack, "bob") == []
    # The same fact stated by bob is bob's own memory, not a reinforcement of alice's.
    bobs = await add(stack, "bob", content="Allergic to shellfish.", importance=0.1)
    assert bobs["id"] != mine["id"] and bobs["importance"] == 0.1

    assert await listed(stack) == [mine]
    assert [m["id"] for m in await listed(stack, "bob")] == [bobs["id"]]


# -- dedupe and reinforcement ------------------------------------------------------------


def test_the_content_key_ignores_case_width_spacing_and_final_punctuation() -> None:
    base = content_key("User is allergic to peanuts.")
    assert content_key("  user IS   allergic\tto peanuts") == base
    assert content_key("ＵＳＥＲ is allergic to peanuts！") == base  # full width (NFKC)
    assert content_key("用户对花生过敏。") == content_key("用户对花生过敏")
    assert content_key("User is allergic to peanut.") != base
    assert content_key("User is not allergic to peanuts.") != base


async def test_stating_a_known_fact_again_reinforces_it_instead_of_duplicating(stack) -> None:
    first = await add(stack, content="Prefers window seats.", importance=0.4, long_term=False)

    second = await add(stack, expect=200, content="  prefers WINDOW seats！", importance=0.9)
    third = await add(stack, expect=200, content="Prefers window seats", importance=0.1)

    assert second["id"] == first["id"] == third["id"]
    assert second["content"] == "Prefers window seats."  # the first wording stays
    assert second["importance"] == 0.9 and third["importance"] == 0.9  # the larger one
    assert second["long_term"] is True and second["expires_at"] is None  # promoted by a long-term statement
    assert at(second["reinforced_at"]) >= at(first["reinforced_at"])
    assert len(await listed(stack)) == 1


async def test_extraction_reinforces_a_short_term_memory_and_pushes_its_expiry(stack) -> None:
    owner = await stack.user_id("alice")
    start = datetime.now(UTC)
    async with llm_state(stack.llm_app).write_sessionmaker() as session, session.begin():
        first = await remember_one(
            session, owner, "Meeting Li Wei on Friday.", importance=0.4, long_term=False, source="chat", now=start
        )
    later = start + timedelta(days=3)
    async with llm_state(stack.llm_app).write_sessionmaker() as session, session.begin():
        again = await remember_one(
            session, owner, "meeting li wei on friday", importance=0.6, long_term=False, source="record", now=later
        )

    assert first.created and not again.created
    memory = (await rows(stack))["Meeting Li Wei on Friday."]
    assert memory.id == first.memory.id
    assert memory.importance == 0.6 and memory.long_term is False
    assert memory.expires_at == later + timedelta(days=7)
    assert memory.reinforced_at == later
    assert memory.source == "chat"  # where it was first found


async def test_new_content_that_another_memory_states_is_a_409(stack) -> None:
    tea = await add(stack, content="Likes tea.")
    coffee = await add(stack, content="Likes coffee.")

    clash = await stack.llm.patch(
        f"{MEMORIES}/{coffee['id']}", headers=stack.auth("alice"), json={"content": "likes TEA"}
    )
    renamed = await stack.llm.patch(
        f"{MEMORIES}/{coffee['id']}", headers=stack.auth("alice"), json={"content": "Likes cocoa."}
    )

    assert clash.status_code == 409 and clash.json()["error"] == "conflict"
    assert renamed.status_code == 200 and renamed.json()["content"] == "Likes cocoa."
    assert (await add(stack, expect=200, content="likes cocoa"))["id"] == coffee["id"]
    assert (await add(stack, content="Likes coffee."))["id"] not in {tea["id"], coffee["id"]}


# -- extraction --------------------------------------------------------------------------


async def test_an_analysed_record_yields_a_memory_and_an_opted_out_one_none(stack) -> None:
    private = await stack.create_record("alice", content="我对猫毛过敏。", ai_opt_out=True)
    record = await stack.create_record("alice", content="我对花生过敏。")

    memory = await wait_for_memory(stack, "花生")
    await wait_until_queue_drained(stack)

    assert memory["content"] == "用户对花生过敏。"
    assert memory["long_term"] is True and memory["expires_at"] is None
    assert memory["source"] == "record" and memory["source_id"] == record["id"]
    assert memory["importance"] == pytest.approx(0.9)
    assert all("猫" not in m["content"] for m in await listed(stack))
    assert private["ai"]["status"] == "skipped"
    assert await listed(stack, "bob") == []


async def test_a_plan_in_a_record_becomes_a_short_term_memory(stack) -> None:
    await stack.create_record("alice", content="我下周三要去上海出差。")

    memory = await wait_for_memory(stack, "上海")

    assert memory["long_term"] is False
    assert at(memory["expires_at"]) > datetime.now(UTC) + timedelta(days=6)


async def test_the_remote_provider_extracts_after_analysis_and_never_sees_opted_out_text(make_stack, fake) -> None:
    analysis = json.dumps({"title": "Allergy", "summary": "An allergy.", "tags": ["health"]})
    facts = json.dumps({"memories": [{"content": "User is allergic to peanuts", "importance": 0.8, "long_term": True}]})
    fake.script(Reply(text=analysis), Reply(text=facts))
    fake.default_reply = Reply(text=json.dumps({"memories": []}))
    settings = remote_settings(fake, llm_allowed_hosts=[fake.host_port], analysis_workers=1)
    async with make_stack(**settings) as stack:
        await stack.create_record("alice", content="my secret zebra diary: I am allergic to zebras", ai_opt_out=True)
        record = await stack.create_record("alice", content="I'm allergic to peanuts, says the doctor.")

        memory = await wait_for_memory(stack, "peanuts")
        await wait_until_queue_drained(stack)

        assert memory["content"] == "User is allergic to peanuts"
        assert memory["source"] == "record" and memory["source_id"] == record["id"]
        assert memory["importance"] == 0.8
        assert len(fake.chat_requests) == 2  # the analysis, then the extraction
        assert "zebra" not in fake.received_text()
        assert len(await listed(stack)) == 1


async def test_no_memories_are_extracted_when_the_analysis_failed(make_stack, fake) -> None:
    fake.default_reply = Reply.html()  # never a usable answer
    settings = remote_settings(fake, llm_allowed_hosts=[fake.host_port], analysis_max_attempts=2)
    async with make_stack(**settings) as stack:
        record = await stack.create_record("alice", content="I'm allergic to peanuts.")

        failed = await stack.wait_for_ai("alice", record["id"])
        await wait_until_queue_drained(stack)

        assert failed["ai"]["status"] == "failed"
        assert len(fake.chat_requests) == 2  # two analysis attempts and no extraction call
        assert await listed(stack) == []


async def test_remember_from_text_stores_a_chats_facts(stack) -> None:
    owner = await stack.user_id("alice")
    provider = await llm_state(stack.llm_app).providers.for_user(owner)
    text = "我叫王小明。我下周三要去上海出差。"

    stored = await remember_from_text(sessions_of(stack), provider, owner, text, "chat", UNKNOWN_ID)
    again = await remember_from_text(sessions_of(stack), provider, owner, text, "chat", UNKNOWN_ID)

    assert [r.created for r in stored] == [True, True] and [r.created for r in again] == [False, False]
    memories = {m["content"]: m for m in await listed(stack)}
    assert len(memories) == 2
    name = next(m for c, m in memories.items() if "王小明" in c)
    plan = next(m for c, m in memories.items() if "上海" in c)
    assert name["long_term"] is True and plan["long_term"] is False
    assert {name["source"], plan["source"]} == {"chat"} and name["source_id"] == UNKNOWN_ID


# -- extraction from chat ----------------------------------------------------------------

FACT = "Remember that my daughter Lily is allergic to peanuts."
NO_MEMORIES = json.dumps({"memories": []})


async def open_conversation(stack: LlmStack, user: str = "alice", **fields: Any) -> str:
    response = await stack.llm.post(CONVERSATIONS, headers=stack.auth(user), json=fields)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def say(stack: LlmStack, conversation_id: str, content: str, *, stream: bool = False) -> httpx.Response:
    body = {"content": content, "stream": stream}
    return await stack.llm.post(f"{CONVERSATIONS}/{conversation_id}/messages", headers=stack.auth("alice"), json=body)


def done_event(response: httpx.Response) -> dict[str, Any]:
    """The `done` event of a (whole, buffered) Server-Sent Events answer."""
    assert response.status_code == 201, response.text  # a streamed answer creates a message too
    for block in response.text.split("\n\n"):
        if block.startswith("event: done\n"):
            return dict(json.loads(block.split("data: ", 1)[1]))
    raise AssertionError(f"no done event in {response.text!r}")


async def wait_until_extractions_ended(stack: LlmStack) -> None:
    """Every memory extraction a chat turn started has ended (a bounded wait)."""
    extractions = llm_state(stack.llm_app).chat_memories
    for _ in range(400):
        if extractions.in_flight == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{extractions.in_flight} memory extractions still running")


async def test_a_fact_said_in_a_kept_conversation_is_remembered_and_in_an_ephemeral_one_not(stack) -> None:
    ephemeral = await open_conversation(stack, ephemeral=True)
    assert (await say(stack, ephemeral, FACT)).status_code == 201
    await wait_until_extractions_ended(stack)
    assert await listed(stack) == []

    kept = await open_conversation(stack)
    assert (await say(stack, kept, FACT)).status_code == 201

    memory = await wait_for_memory(stack, "Lily")
    assert memory["content"] == "User's daughter Lily is allergic to peanuts."
    assert memory["source"] == "chat" and memory["source_id"] == kept
    assert memory["long_term"] is True
    await wait_until_extractions_ended(stack)
    assert [m["id"] for m in await listed(stack)] == [memory["id"]]
    assert await listed(stack, "bob") == []
    assert (await stack.llm.get(f"{MEMORIES}/{memory['id']}", headers=stack.auth("bob"))).status_code == 404


async def test_the_remote_provider_that_answered_extracts_from_the_users_words(make_stack, fake) -> None:
    facts = [{"content": "User's daughter Lily is allergic to peanuts", "importance": 0.9, "long_term": True}]
    fake.script(Reply(text="Noted, no peanuts for Lily."), Reply(text=json.dumps({"memories": facts})))
    fake.default_reply = Reply(text=NO_MEMORIES)
    async with make_stack(**remote_settings(fake, llm_allowed_hosts=[fake.host_port])) as stack:
        kept = await open_conversation(stack)

        done = done_event(await say(stack, kept, FACT, stream=True))
        memory = await wait_for_memory(stack, "Lily")

        assert done["content"] == "Noted, no peanuts for Lily."
        assert memory["source"] == "chat" and memory["source_id"] == kept and memory["importance"] == 0.9
        [extraction] = memory_requests(fake)
        assert extraction.json.get("stream") is not True
        assert FACT in extraction.json["messages"][-1]["content"]
        assert "Noted" not in json.dumps(extraction.json), "the answer is not the user's words"
        assert len(answer_requests(fake)) == 1 and len(fake.chat_requests) == 2
        requests, _ = await llm_state(stack.llm_app).budgets.used(await stack.user_id("alice"))
        assert requests == 2  # the extraction counts against the daily budget too


@pytest.mark.parametrize("question", ["What did I write about the budget?", "预算会议是哪天开的？"])
async def test_a_plain_question_costs_no_extraction_call(make_stack, fake, question: str) -> None:
    facts = [{"content": "User's daughter Lily is allergic to peanuts", "importance": 0.9, "long_term": True}]
    fake.script(Reply(text="On Monday."), Reply(text="Noted."), Reply(text=json.dumps({"memories": facts})))
    fake.default_reply = Reply(text=NO_MEMORIES)
    async with make_stack(**remote_settings(fake, llm_allowed_hosts=[fake.host_port])) as stack:
        kept = await open_conversation(stack)

        assert (await say(stack, kept, question)).status_code == 201
        assert (await say(stack, kept, FACT)).status_code == 201
        await wait_for_memory(stack, "Lily")
        await wait_until_extractions_ended(stack)

        [extraction] = memory_requests(fake)  # for the fact, not for the question
        assert FACT in extraction.json["messages"][-1]["content"]
        assert len(answer_requests(fake)) == 2


async def test_a_used_up_budget_skips_the_extraction_not_the_answer(make_stack, fake) -> None:
    fake.default_reply = Reply(text="Noted.")
    async with make_stack(**remote_settings(fake, llm_allowed_hosts=[fake.host_port], llm_daily_requests=1)) as stack:
        kept = await open_conversation(stack)

        answered = await say(stack, kept, FACT)
        await wait_until_extractions_ended(stack)

        assert answered.status_code == 201 and answered.json()["content"] == "Noted."
        assert memory_requests(fake) == [] and len(fake.chat_requests) == 1
        assert await listed(stack) == []


async def test_a_provider_fault_during_extraction_is_logged_and_the_chat_goes_on(make_stack, fake, caplog) -> None:
    caplog.set_level(logging.INFO)
    fake.script(Reply(text="Noted."), Reply.html())  # the extraction gets an HTML page
    fake.default_reply = Reply(text="Still here.")
    async with make_stack(**remote_settings(fake, llm_allowed_hosts=[fake.host_port])) as stack:
        kept = await open_conversation(stack)

        done = done_event(await say(stack, kept, FACT, stream=True))
        await wait_until_extractions_ended(stack)
        again = await say(stack, kept, "My son Tom likes apples.")  # its extraction gets prose, not JSON
        await wait_until_extractions_ended(stack)

        assert done["content"] == "Noted."
        assert len(memory_requests(fake)) == 2 and await listed(stack) == []
        failed = [r for r in caplog.records if r.getMessage().startswith("extracting memories from conversation")]
        assert len(failed) == 2
        assert all(kept in r.getMessage() and r.levelno == logging.WARNING and not r.exc_info for r in failed)
        assert UPSTREAM_MARKER not in caplog.text and "sk-env-key" not in caplog.text
        assert again.status_code == 201 and again.json()["content"] == "Still here."


async def test_an_extraction_never_delays_the_answer_nor_holds_up_shutdown(make_stack, fake, monkeypatch) -> None:
    monkeypatch.setattr(from_chat, "SHUTDOWN_GRACE_SECONDS", 0.5)
    fake.script(Reply(text="Noted."), Reply(text=NO_MEMORIES, delay=60))
    async with make_stack(**remote_settings(fake, llm_allowed_hosts=[fake.host_port])) as stack:
        extractions = llm_state(stack.llm_app).chat_memories
        kept = await open_conversation(stack)

        done = done_event(await say(stack, kept, FACT, stream=True))

        assert done["content"] == "Noted." and extractions.in_flight == 1
        for _ in range(200):  # the extraction is waiting on the provider
            if memory_requests(fake):
                break
            await asyncio.sleep(0.05)
        assert len(memory_requests(fake)) == 1
        closing = time.monotonic()
    assert time.monotonic() - closing < 10, "shutdown waited for the provider"
    assert extractions.in_flight == 0


# -- decay and expiry --------------------------------------------------------------------


async def test_the_daily_job_decays_extracted_memories_and_forgets_expired_and_faded_ones(stack) -> None:
    owner = await stack.user_id("alice")
    start = datetime.now(UTC)
    async with llm_state(stack.llm_app).write_sessionmaker() as session, session.begin():
        for content, importance in (("Extracted strong fact.", 0.9), ("Extracted weak fact.", 0.051)):
            await remember_one(
                session, owner, content, importance=importance, long_term=True, source="record", now=start
            )
        await remember_one(
            session, owner, "Recently reinforced fact.", importance=0.9, long_term=True, source="chat",
            now=start + timedelta(days=1, hours=12),
        )  # fmt: skip
    await add(stack, content="User's own fact.", importance=0.3)
    await add(stack, content="User's own plan.", importance=0.3, long_term=False)
    scheduler = llm_state(stack.llm_app).scheduler
    strong_updated = (await rows(stack))["Extracted strong fact."].updated_at

    report = await scheduler.run_once(now=start + timedelta(days=2))

    memories = await rows(stack)
    assert report.decay is not None and report.decay.forgotten == 1 and report.decay.expired == 0
    assert memories["Extracted strong fact."].importance == pytest.approx(0.9 * 0.97)
    assert memories["Extracted strong fact."].updated_at == strong_updated  # decay is not an edit
    assert "Extracted weak fact." not in memories  # 0.051 × 0.97 < the 0.05 floor
    assert memories["Recently reinforced fact."].importance == 0.9  # reinforced within the day
    assert memories["User's own fact."].importance == 0.3  # the user's own never decay
    assert "User's own plan." in memories

    earlier_that_day = (start + timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    same_day = await scheduler.run_once(now=earlier_that_day)
    assert same_day.decay is None  # once per day, across every replica
    assert (await rows(stack))["Extracted strong fact."].importance == pytest.approx(0.9 * 0.97)

    week_later = await scheduler.run_once(now=start + timedelta(days=8))
    memories = await rows(stack)
    assert week_later.decay is not None and week_later.decay.expired == 1
    assert "User's own plan." not in memories  # short-term: gone after its 7 days
    assert memories["Extracted strong fact."].importance == pytest.approx(0.9 * 0.97 * 0.97)
    assert memories["Recently reinforced fact."].importance == pytest.approx(0.9 * 0.97)
    assert memories["User's own fact."].importance == 0.3


async def test_an_edited_memory_is_the_users_own_and_stops_decaying(stack) -> None:
    owner = await stack.user_id("alice")
    start = datetime.now(UTC)
    async with llm_state(stack.llm_app).write_sessionmaker() as session, session.begin():
        found = await remember_one(
            session, owner, "Runs on Sundays.", importance=0.06, long_term=True, source="record", now=start
        )
    edited = await stack.llm.patch(
        f"{MEMORIES}/{found.memory.id}", headers=stack.auth("alice"), json={"content": "Runs on Sunday mornings."}
    )
    assert edited.status_code == 200 and edited.json()["source"] == "user"

    for day in range(2, 6):
        await llm_state(stack.llm_app).scheduler.run_once(now=start + timedelta(days=day))

    assert (await rows(stack))["Runs on Sunday mornings."].importance == 0.06
