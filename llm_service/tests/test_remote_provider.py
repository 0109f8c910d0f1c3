"""The remote provider against the fake provider: what it sends (prompts from res/, the
record, the sources), what it makes of the answers, and citations only to given records."""

from __future__ import annotations

import dataclasses
import json
import re
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from common.api_clients.llm import (
    CircuitBreaker,
    OpenAICompatibleClient,
    ProviderBadResponse,
    ProviderServerError,
)
from llm_service.app.providers.base import (
    AnswerChunk,
    ChatContext,
    ChatTurn,
    Provider,
    SourceRecord,
)
from llm_service.app.providers.remote import (
    LANGUAGES,
    PROMPTS_DIR,
    RemoteProvider,
    extract_citations,
    fill,
    load_prompt,
    parse_memories,
)
from llm_service.tests.fake_provider import FAKE_API_KEY, FakeProvider, Reply
from tests.support import async_wait_until

WHEN = datetime(2024, 5, 4, 9, 30, tzinfo=UTC)
HIKE = SourceRecord("rec-hike", "diary", "爬山", "周六和小王去香山爬山，红叶很美。", ("运动",), WHEN)
TEA = SourceRecord("rec-tea", "note", None, "I prefer green tea to coffee in the afternoon.", (), WHEN)
# The values every template is filled with, by prompt name.
PLACEHOLDERS = {
    "analyze": {"kind", "occurred_at", "existing_tags", "title", "content"},
    "chat_system": {"today", "memories", "sources"},
    "digest": {"period", "period_label", "count", "records"},
    "memories": {"text"},
}


def make_provider(http: httpx.AsyncClient, shared_fake: FakeProvider, *, json_mode: bool = True) -> RemoteProvider:
    client = OpenAICompatibleClient(
        http,
        shared_fake.base_url,
        FAKE_API_KEY,
        "fake-model",
        breaker=CircuitBreaker(),
        backoff_base=0.01,
        max_retries=1,
    )
    return RemoteProvider(client, name="fake", supports_json_mode=json_mode)


def system_and_user(shared_fake: FakeProvider) -> tuple[str, str]:
    messages = shared_fake.chat_requests[-1].json["messages"]
    return messages[0]["content"], messages[-1]["content"]


# -- prompts --------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", sorted(PLACEHOLDERS))
def test_every_prompt_exists_in_both_languages_and_uses_only_known_placeholders(language: str, name: str) -> None:
    path = PROMPTS_DIR / language / f"{name}.txt"
    assert path.is_file()
    prompt = load_prompt(language, name)
    assert prompt.system
    used = set(re.findall(r"\{(\w+)\}", prompt.system + prompt.user))
    assert used == PLACEHOLDERS[name]
    filled = prompt.messages(**{key: f"<{key}>" for key in used})
    assert not re.search(r"\{\w+\}", json.dumps(filled, ensure_ascii=False))


def test_the_languages_have_their_own_texts() -> None:
    for name in PLACEHOLDERS:
        assert load_prompt("zh-CN", name).system != load_prompt("en", name).system
    assert re.search(r"[\u4e00-\u9fff]", load_prompt("zh-CN", "analyze").system)


def test_values_are_inserted_verbatim_never_read_as_templates() -> None:
    assert fill("a {x} b", {"x": "{y} {x}"}) == "a {y} {x} b"
    with pytest.raises(KeyError):
        fill("{missing}", {})


# -- analyze --------------------------------------------------------------------------


async def test_analyze_sends_the_record_and_existing_tags_and_reads_clean_fields(http, shared_fake) -> None:
    answer = {"title": "标题：“香山秋游”", "summary": "周六和小王去香山爬山。", "tags": ["户外", "运动", "朋友"]}
    shared_fake.script(Reply(text=json.dumps(answer, ensure_ascii=False), usage=(120, 30)))
    provider = make_provider(http, shared_fake)
    analysis, usage = await provider.analyze(HIKE, ("运动", "工作"), "zh-CN")

    assert analysis.title == "香山秋游"
    assert analysis.summary == "周六和小王去香山爬山。"
    assert analysis.tags == ("户外", "运动", "朋友")
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total) == (120, 30, 150)
    request = shared_fake.chat_requests[-1].json
    assert request["response_format"] == {"type": "json_object"}
    system, user = system_and_user(shared_fake)
    assert system == load_prompt("zh-CN", "analyze").system
    assert HIKE.content in user and "运动, 工作" in user and "diary" in user


async def test_analyze_without_json_mode_parses_deepseek_like_output(http, shared_fake) -> None:
    text = (
        "<think>先想一想</think>\n"
        '```json\n{"title": "Tea, not coffee", "summary": "Prefers green tea.", "tags": ["Tea",],}\n```'
    )
    shared_fake.script(Reply(text=text))
    analysis, _ = await make_provider(http, shared_fake, json_mode=False).analyze(TEA, ("tea",), "en")
    assert (analysis.title, analysis.tags) == ("Tea, not coffee", ("tea",))
    assert "response_format" not in shared_fake.chat_requests[-1].json
    assert shared_fake.chat_requests[-1].json["messages"][0]["content"] == load_prompt("en", "analyze").system


async def test_analyze_with_an_unusable_answer_is_a_bad_response(http, shared_fake) -> None:
    shared_fake.script(Reply(text="I'm sorry, I can't help with that."))
    with pytest.raises(ProviderBadResponse):
        await make_provider(http, shared_fake).analyze(TEA, (), "en")


async def test_a_long_record_is_cut_before_it_is_sent(http, shared_fake) -> None:
    shared_fake.script(Reply(text='{"title": "Long", "summary": "Long text.", "tags": ["long"]}'))
    provider = make_provider(http, shared_fake)
    provider.max_record_chars = 1000
    record = SourceRecord("rec-long", "note", None, "word " * 5000, (), WHEN)
    await provider.analyze(record, (), "en")
    _, user = system_and_user(shared_fake)
    assert len(user) < 2000


# -- answer ---------------------------------------------------------------------------


BASE_CONTEXT = ChatContext(
    question="What did I do on Saturday?",
    history=(ChatTurn("user", "Hi"), ChatTurn("assistant", "Hello! How can I help?")),
    records=(HIKE, TEA),
    memories=("Has a friend called Xiao Wang",),
    language="en",
)


def chat_context(**overrides: Any) -> ChatContext:
    return dataclasses.replace(BASE_CONTEXT, **overrides)


async def collect(provider: RemoteProvider, context: ChatContext) -> list[AnswerChunk]:
    return [chunk async for chunk in provider.answer(context)]


async def test_answer_streams_deltas_and_ends_with_citations_and_usage(http, shared_fake) -> None:
    shared_fake.script(Reply(chunks=["You hiked ", "Xiangshan [1]", " and drank tea [[rec-tea]]."], usage=(300, 12)))
    chunks = await collect(make_provider(http, shared_fake), chat_context())
    assert [c.text for c in chunks[:-1]] == ["You hiked ", "Xiangshan [1]", " and drank tea [[rec-tea]]."]
    assert not any(c.done for c in chunks[:-1])
    final = chunks[-1]
    assert final.done and final.text == ""
    assert final.citations == ("rec-hike", "rec-tea")
    assert final.usage.total == 312


async def test_answer_sends_sources_memories_history_and_the_question_in_order(http, shared_fake) -> None:
    await collect(make_provider(http, shared_fake), chat_context())
    messages = shared_fake.chat_requests[-1].json["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    system = messages[0]["content"]
    assert "[1] 2024-05-04 · diary · 爬山" in system and HIKE.content in system
    assert "[2] 2024-05-04 · note" in system and TEA.content in system
    assert "- Has a friend called Xiao Wang" in system
    assert messages[1:] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "What did I do on Saturday?"},
    ]
    assert shared_fake.chat_requests[-1].json["stream"] is True


async def test_citations_name_only_records_that_were_in_the_context(http, shared_fake) -> None:
    shared_fake.script(Reply(chunks=["See [3], [[rec-someone-else]], [0] and 【2】", " and [1, 2]."]))
    chunks = await collect(make_provider(http, shared_fake), chat_context())
    assert chunks[-1].citations == ("rec-tea", "rec-hike")


async def test_an_answer_without_records_cites_nothing(http, shared_fake) -> None:
    shared_fake.script(Reply(chunks=["Nothing recorded [1]."]))
    chunks = await collect(make_provider(http, shared_fake), chat_context(records=(), memories=()))
    assert chunks[-1].citations == ()
    system = shared_fake.chat_requests[-1].json["messages"][0]["content"]
    assert system.rstrip().endswith("—")  # no sources were listed


def test_extract_citations_forms() -> None:
    records = (HIKE, TEA)
    assert extract_citations("a [2] b [1] c [2]", records) == ("rec-tea", "rec-hike")
    assert extract_citations("[[rec-hike]] [rec-tea]", records) == ("rec-hike", "rec-tea")
    assert extract_citations("[1][2]", records) == ("rec-hike", "rec-tea")
    assert extract_citations("【1、2】", records) == ("rec-hike", "rec-tea")
    assert extract_citations("[12] [rec-other] [^3] [x]", records) == ()


async def test_an_answer_in_chinese_uses_the_chinese_system_prompt(http, shared_fake) -> None:
    await collect(make_provider(http, shared_fake), chat_context(language="zh-CN", question="我周六做了什么？"))
    system = shared_fake.chat_requests[-1].json["messages"][0]["content"]
    head = load_prompt("zh-CN", "chat_system").system.split("{today}")[0]
    assert system.startswith(head)


async def test_stopping_an_answer_early_closes_the_upstream_stream(http, shared_fake) -> None:
    shared_fake.script(Reply(chunks=[f"w{i} " for i in range(200)], chunk_delay=0.05))
    async with aclosing(make_provider(http, shared_fake).answer(chat_context())) as stream:
        async for chunk in stream:
            if chunk.text:
                break
    assert await async_wait_until(lambda: shared_fake.streams_cancelled == 1, timeout=10)


async def test_a_provider_error_mid_answer_reaches_the_caller(http, shared_fake) -> None:
    shared_fake.script(Reply(chunks=["one ", "two"], error_after=1))
    texts: list[str] = []
    with pytest.raises(ProviderServerError):
        async for chunk in make_provider(http, shared_fake).answer(chat_context()):
            texts.append(chunk.text)
    assert texts == ["one "]


# -- digest and memories --------------------------------------------------------------


async def test_digest_lists_the_records_and_returns_markdown(http, shared_fake) -> None:
    shared_fake.script(Reply(text="```markdown\n# 本周回顾\n\n- 去香山爬山 [1]\n```", usage=(200, 40)))
    text, usage = await make_provider(http, shared_fake).digest((HIKE, TEA), "week", "zh-CN")
    assert text == "# 本周回顾\n\n- 去香山爬山 [1]"
    assert usage.total == 240
    system, user = system_and_user(shared_fake)
    assert "每周" in system
    assert HIKE.content in user and TEA.content in user and "2024-05-04" in user


async def test_an_empty_digest_is_a_bad_response(http, shared_fake) -> None:
    shared_fake.script(Reply(text="<think>nothing</think>"))
    with pytest.raises(ProviderBadResponse):
        await make_provider(http, shared_fake).digest((HIKE,), "day", "en")


async def test_extract_memories_reads_deduplicates_and_clamps(http, shared_fake) -> None:
    answer = {
        "memories": [
            {"content": "Prefers green tea to coffee", "importance": 0.8, "long_term": True},
            {"content": "prefers green tea to coffee", "importance": 0.3},
            {"content": "Is hiking on Saturday", "importance": 7, "long_term": "false"},
            {"content": "   "},
            "Has a friend called Xiao Wang",
        ]
    }
    shared_fake.script(Reply(text=json.dumps(answer)))
    memories, _ = await make_provider(http, shared_fake).extract_memories("I prefer green tea…", "en")
    assert [(m.content, m.importance, m.long_term) for m in memories] == [
        ("Prefers green tea to coffee", 0.8, True),
        ("Is hiking on Saturday", 0.7, False),
        ("Has a friend called Xiao Wang", 0.5, False),
    ]
    _, user = system_and_user(shared_fake)
    assert "I prefer green tea…" in user


def test_parse_memories_accepts_a_bare_list_and_an_empty_answer() -> None:
    assert parse_memories("Nothing worth keeping: []") == []
    assert (
        parse_memories('See [1]. ```json\n[{"content": "Likes cats", "importance": "0.9"}]\n```')[0].importance == 0.9
    )
    with pytest.raises(ProviderBadResponse):
        parse_memories("I don't think there is anything to remember.")


async def test_remote_provider_is_a_provider_that_sends_text_away(http, shared_fake) -> None:
    provider: Provider = make_provider(http, shared_fake)
    assert provider.is_remote is True
    assert provider.name == "fake"
