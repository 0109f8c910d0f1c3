"""A provider that hangs or talks nonsense mid-answer (issue 13, fault tests): a streamed answer
ends with one `error` event, an answer asked for whole is a 502/504, nothing waits past the
idle timeout, the provider's connection is closed rather than left hanging, nothing is stored
and the daily budget is charged only for answers that arrived — once each.

The stack is llm_service's chat stack (llm, mobile and web served over real HTTP, user_service
in-process; `llm_service/tests/chat_stack.py`); the provider is the fake one, scripted to fail.
The idle timeout is `JILU_HTTP_TIMEOUT` (1 s here); `GUARD` only keeps a hang from hanging
the suite.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from common.cache import create_redis
from llm_service.app.budgets import BudgetGuard
from llm_service.app.config import LlmSettings
from llm_service.tests.chat_stack import ChatStack, SseEvent, answer_requests, chat_stack, remote
from llm_service.tests.fake_provider import UPSTREAM_MARKER, FakeProvider, Reply, serve_fake_provider
from tests.support import async_wait_until, free_port

IDLE_TIMEOUT = 1.0
GUARD = 30.0  # seconds: far past every timeout below; reaching it means something hung
TOKENS = sum(Reply().usage)  # what the fake reports for an answer that completes


def _chunk(text: str) -> bytes:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
    return f"data: {json.dumps({'id': 'c', 'object': 'chat.completion.chunk', 'choices': [choice]})}\n\n".encode()


HANGS = {
    "hangs before the first token": Reply(first_token_delay=120),
    "hangs mid-stream": Reply(chunks=["部分", "回答", "结束"], hang_after=1),
    "hangs mid-event": Reply(raw_events=[_chunk("部分"), b'data: {"id": "c", "choi'], hang_after=0),
}
MALFORMED = {
    "a line that is not JSON": Reply(raw_events=[_chunk("部分"), b"data: {not json at all\n\n"]),
    "truncated JSON at the end": Reply(raw_events=[_chunk("部分"), b'data: {"id": "c", "choices": [{"delta": {"con']),
    "a chunk that is not an object": Reply(raw_events=[_chunk("部分"), b"data: [1, 2, 3]\n\n"]),
    "choices of the wrong shape": Reply(raw_events=[b'data: {"choices": "everything"}\n\n']),
    "no data lines at all": Reply(raw_events=[b"event: hello\nid: 1\n\n", b"<html>" + UPSTREAM_MARKER.encode()]),
    "ends without a finish": Reply(raw_events=[_chunk("半个"), _chunk("回答")]),
    "an error chunk after text": Reply(chunks=["部分", "回答"], error_after=1),
    "an error object as the data": Reply(raw_events=[b'data: {"error": "' + UPSTREAM_MARKER.encode() + b'"}\n\n']),
}
FAULTS = {**HANGS, **MALFORMED}


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with serve_fake_provider() as provider:
        yield provider


@pytest.fixture
def stack(make_settings: Callable[..., Any], migrated_database_url: str, redis: Any) -> Callable[..., Any]:
    def build(**llm: Any) -> Any:
        return chat_stack(make_settings, migrated_database_url, **llm)

    return build


async def ask_streaming(chat: ChatStack, client: httpx.AsyncClient, conversation: str) -> list[SseEvent]:
    """The events of one streamed question, bounded by `GUARD`."""
    async with asyncio.timeout(GUARD):
        response, events = await chat.ask_streaming("alice", conversation, "你好", client=client)
    assert response.status_code == 201, response.text
    return events


async def spent(chat: ChatStack) -> dict[str, Any]:
    response = await chat.llm.get("/api/v1/llm/usage", headers=chat.headers["alice"])
    assert response.status_code == 200, response.text
    return {"requests": response.json()["requests"]["used"], "tokens": response.json()["tokens"]["used"]}


async def stored_messages(chat: ChatStack, conversation: str) -> list[str]:
    url = f"/api/v1/chat/conversations/{conversation}"
    detail = (await chat.mobile.get(url, headers=chat.headers["alice"])).json()
    return [message["content"] for message in detail["messages"]["items"]]


async def test_a_faulty_stream_ends_with_one_error_event_and_is_neither_charged_nor_stored(stack, fake) -> None:
    async with stack(**remote(fake, http_timeout=IDLE_TIMEOUT, llm_daily_requests=100)) as chat:
        conversation = await chat.conversation("alice")
        for number, (name, fault) in enumerate(FAULTS.items()):
            fake.default_reply = fault
            client = chat.web if number % 2 else chat.mobile  # both ports relay the stream

            events = await ask_streaming(chat, client, conversation)

            names = [event.event for event in events if event.event != "comment"]
            assert names[-1] == "error" and names.count("error") == 1 and "done" not in names, (name, names)
            assert set(names) <= {"delta", "error"}, (name, names)
            error = events[-1].data
            assert set(error) == {"error", "detail"}, (name, error)
            expected = "llm_provider_timeout" if name in HANGS else "llm_provider_error"
            assert error["error"] == expected, (name, error)
            assert UPSTREAM_MARKER not in json.dumps(error, ensure_ascii=False)
            assert await spent(chat) == {"requests": number, "tokens": number * TOKENS}, name  # not charged

            fake.default_reply = Reply(text="恢复了")  # the next question works, and is charged once
            events = await ask_streaming(chat, client, conversation)
            assert [e.event for e in events if e.event not in ("delta", "comment")] == ["done"], name
            assert await spent(chat) == {"requests": number + 1, "tokens": (number + 1) * TOKENS}, name

        # Each hanging stream was closed by Jilu, not left open until the provider gave up (a
        # hang lasts far past GUARD). Counted as streams begun and not ended: one whose client
        # left before the fake began it (a slow machine) never runs its body, so is not counted.
        closed = await async_wait_until(lambda: fake.streams_open == 0, timeout=GUARD)
        assert closed, f"{fake.streams_open} provider streams left open ({fake.streams_cancelled} closed early)"
        assert await stored_messages(chat, conversation) == ["恢复了", "你好"] * len(FAULTS)  # only whole answers
        assert len(answer_requests(fake)) == 2 * len(FAULTS)  # one call per question: no retry mid-stream


async def test_a_faulty_answer_asked_for_whole_is_a_502_or_504_never_a_hang(stack, fake) -> None:
    async with stack(**remote(fake, http_timeout=IDLE_TIMEOUT, llm_daily_requests=100)) as chat:
        conversation = await chat.conversation("alice")
        for number, (name, fault) in enumerate(FAULTS.items()):
            fake.default_reply = fault
            client = chat.web if number % 2 else chat.mobile

            async with asyncio.timeout(GUARD):
                response = await chat.ask("alice", conversation, "你好", client=client)

            expected = (504, "llm_provider_timeout") if name in HANGS else (502, "llm_provider_error")
            assert (response.status_code, response.json()["error"]) == expected, (name, response.text)
            assert UPSTREAM_MARKER not in response.text
            assert await spent(chat) == {"requests": number, "tokens": number * TOKENS}, name
            fake.default_reply = Reply(text="恢复了")
            recovered = await chat.ask("alice", conversation, "再试一次", client=client)
            assert recovered.status_code == 201 and recovered.json()["content"] == "恢复了", name
            assert await spent(chat) == {"requests": number + 1, "tokens": (number + 1) * TOKENS}, name


async def test_an_answer_whose_cost_cannot_be_counted_is_kept_not_thrown_away(make_settings, caplog) -> None:
    """Redis going away between the budget check and the count: the call happened and its
    answer is used (an analysis stored, a chat answer given); failing here would make the
    caller ask, and pay, again. The miss is logged."""
    dead = create_redis(f"redis://127.0.0.1:{free_port()}/0")
    try:
        budgets = BudgetGuard(dead, make_settings(LlmSettings))
        await budgets.record("someone", 42)  # does not raise
    finally:
        await dead.aclose()
    assert "could not count 42 tokens against the budget of someone" in caplog.text
