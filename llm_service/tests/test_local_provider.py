"""The offline provider `local`: analysis, grounded answers, digests and memories without a model."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from common.api_clients.llm.results import TokenUsage
from llm_service.app.providers.base import AnswerChunk, ChatContext, ChatTurn, Language, SourceRecord
from llm_service.app.providers.local import LocalProvider
from llm_service.app.providers.text import EN_STOP_WORDS, ZH_STOP_WORDS, plain_text, split_sentences

CST = timezone(timedelta(hours=8))

BUDGET_MEETING = SourceRecord(
    id="rec-budget",
    kind="note",
    title=None,
    content=(
        "# 周会：**预算**讨论\n\n"
        "上周三下午开会讨论了下季度的预算。市场部希望增加推广费用，但财务部认为预算需要削减百分之十。"
        "最后决定先做一版详细的预算方案，下周五前交给张总审批。另外，新办公室的装修也要控制成本。"
        "会议持续了两个小时，大家都很累。"
    ),
    tags=("工作",),
    occurred_at=datetime(2024, 5, 6, 14, 30, tzinfo=CST),
)
WEST_LAKE = SourceRecord(
    id="rec-lake",
    kind="diary",
    title=None,
    content="今天天气很好，和朋友去西湖边散步，吃了杭帮菜，晚上又去看了音乐喷泉表演，回家时已经十点多了。",
    tags=("生活",),
    occurred_at=datetime(2024, 5, 6, 19, 0, tzinfo=CST),
)
GROCERIES = SourceRecord(
    id="rec-groceries",
    kind="todo",
    title="买菜",
    content="- [ ] 牛奶\n- [ ] 鸡蛋",
    tags=(),
    occurred_at=datetime(2024, 5, 7, 9, 0, tzinfo=CST),
)
MARKETING = SourceRecord(
    id="rec-marketing",
    kind="note",
    title=None,
    content=(
        "Met with [Sarah](https://example.com/sarah) about the **Q3 marketing budget** and what we should do next. "
        "We agreed to cut the budget for online ads by 10% and move the savings to the conference. "
        "Sarah will send the revised budget plan on Friday. "
        "The conference in Berlin is our biggest event of the year, and the whole team is looking forward to it. "
        "I also need to book flights to Berlin before the prices go up."
    ),
    tags=("work",),
    occurred_at=datetime(2024, 5, 8, 10, 0, tzinfo=CST),
)
GARDEN = SourceRecord(
    id="rec-garden",
    kind="photo",
    title=None,
    content="Planted tomatoes and basil in the garden.",
    tags=("garden",),
    occurred_at=datetime(2024, 5, 8, 18, 0, tzinfo=CST),
)
ALL_RECORDS = (BUDGET_MEETING, WEST_LAKE, GROCERIES, MARKETING, GARDEN)


@pytest.fixture
def provider() -> LocalProvider:
    return LocalProvider()


def sentences(markdown: str) -> list[str]:
    return [s for line in plain_text(markdown).splitlines() for s in split_sentences(line)]


def bare(sentence: str) -> str:
    return sentence.rstrip("。.！!？?；;")


async def ask(provider: LocalProvider, question: str, language: Language = "zh-CN", **extra) -> list[AnswerChunk]:
    context = ChatContext(question=question, records=extra.pop("records", ALL_RECORDS), language=language, **extra)
    return [chunk async for chunk in provider.answer(context)]


# --- analysis --------------------------------------------------------------------------


async def test_chinese_record_gets_its_heading_as_title_a_central_summary_and_keyword_tags(provider):
    analysis, usage = await provider.analyze(BUDGET_MEETING, ("旅行", "办公室"), "en")

    assert usage == TokenUsage() and usage.total == 0
    assert analysis.title == "周会：预算讨论"  # the heading, without "#" and "**"
    summary_sentences = re.findall(r"[^。]+。", analysis.summary)
    assert 1 <= len(summary_sentences) <= 3 and len(analysis.summary) <= 200
    text_sentences = sentences(BUDGET_MEETING.content)
    assert all(s in text_sentences for s in summary_sentences)
    # In the text's order, and the opening sentence about the budget is among them.
    assert [text_sentences.index(s) for s in summary_sentences] == sorted(
        text_sentences.index(s) for s in summary_sentences
    )
    assert "上周三下午开会讨论了下季度的预算。" in summary_sentences
    assert 1 <= len(analysis.tags) <= 5
    assert analysis.tags[0] == "办公室"  # the user's existing tag the text mentions comes first
    assert "旅行" not in analysis.tags  # an existing tag the text does not mention stays out
    assert "预算" in analysis.tags
    for tag in analysis.tags:
        assert len(tag) >= 2 and tag not in ZH_STOP_WORDS and not re.search(r"\d|百分之|两个|上周|下周", tag)


async def test_chinese_title_without_heading_is_the_first_sentence_trimmed_to_30_characters(provider):
    record = SourceRecord(
        id="long",
        kind="diary",
        title=None,
        content="今天**终于**去了[故宫博物院](https://www.dpm.org.cn)参观了期待已久的宋代书画特展然后又在景山公园看了日落"
        "非常满足。",
        tags=(),
        occurred_at=WEST_LAKE.occurred_at,
    )
    analysis, _ = await provider.analyze(record, (), "zh-CN")

    assert len(analysis.title) <= 30
    assert not re.search(r"[#*\[\]()]|https?:", analysis.title)
    first_sentence = "今天终于去了故宫博物院参观了期待已久的宋代书画特展然后又在景山公园看了日落非常满足"
    assert analysis.title.endswith("…") and first_sentence.startswith(analysis.title.rstrip("…"))


async def test_english_record_gets_a_plain_title_at_a_word_boundary_an_extractive_summary_and_tags(provider):
    analysis, usage = await provider.analyze(MARKETING, ("Marketing", "art", "travel"), "zh-CN")

    assert usage.total == 0
    assert len(analysis.title) <= 60 and "[" not in analysis.title and "*" not in analysis.title
    assert analysis.title.endswith("…")
    first = "Met with Sarah about the Q3 marketing budget and what we should do next"
    stem = analysis.title.rstrip("…")
    assert first.startswith(stem) and first[len(stem)] == " "  # cut between words, not inside one
    assert len(analysis.summary) <= 200
    text_sentences = sentences(MARKETING.content)
    summary_sentences = split_sentences(analysis.summary)
    assert 1 <= len(summary_sentences) <= 3 and all(s in text_sentences for s in summary_sentences)
    assert analysis.tags[0] == "marketing"  # existing, normalised, and preferred
    assert "budget" in analysis.tags
    assert "art" not in analysis.tags  # an existing tag the text does not mention
    assert all(tag not in EN_STOP_WORDS and tag == tag.casefold() for tag in analysis.tags)
    assert 1 <= len(analysis.tags) <= 5


async def test_existing_tag_matches_a_plural_and_whole_words_only(provider):
    record = SourceRecord(
        "r", "note", None, "Started the budgets review; the party starts at eight.", (), MARKETING.occurred_at
    )
    analysis, _ = await provider.analyze(record, ("budget", "art", "star"), "en")

    assert analysis.tags[0] == "budget"
    assert "art" not in analysis.tags and "star" not in analysis.tags


async def test_short_record_is_its_own_summary_and_an_empty_one_gets_a_placeholder_title(provider):
    analysis, _ = await provider.analyze(GARDEN, (), "zh-CN")
    assert analysis.summary == "Planted tomatoes and basil in the garden."
    assert analysis.title == "Planted tomatoes and basil in the garden"
    assert {"tomatoes", "basil", "garden"} & set(analysis.tags)

    empty = SourceRecord("e", "photo", None, "", (), GARDEN.occurred_at)
    assert (await provider.analyze(empty, ("garden",), "en"))[0].title == "Untitled record"
    assert (await provider.analyze(empty, ("garden",), "zh-CN"))[0].tags == ()


async def test_the_users_own_title_wins_and_loses_its_markdown(provider):
    analysis, _ = await provider.analyze(GROCERIES, (), "zh-CN")
    assert analysis.title == "买菜"
    assert set(analysis.tags) >= {"牛奶", "鸡蛋"}


async def test_analysis_is_deterministic(provider):
    first = [await provider.analyze(r, ("办公室", "work"), "zh-CN") for r in ALL_RECORDS]
    again = [await LocalProvider().analyze(r, ("办公室", "work"), "zh-CN") for r in ALL_RECORDS]
    assert first == again


# --- answers ---------------------------------------------------------------------------


async def test_chinese_question_quotes_and_cites_the_meeting_record(provider):
    chunks = await ask(provider, "上周开会讨论了什么？")

    assert len(chunks) >= 3 and all(not c.done for c in chunks[:-1]) and chunks[-1].done
    text = "".join(c.text for c in chunks)
    assert text.startswith("（离线模式：未配置大语言模型")
    assert chunks[-1].citations == ("rec-budget",)
    assert "上周三下午开会讨论了下季度的预算" in text and "2024-05-06" in text
    assert chunks[-1].usage.total == 0


async def test_english_question_cites_only_the_records_it_quotes(provider):
    chunks = await ask(provider, "What did Sarah say about the budget?", "en")

    text = "".join(c.text for c in chunks)
    assert text.startswith("(Offline mode: no language model is configured")
    assert chunks[-1].citations == ("rec-marketing",)
    assert "Sarah will send the revised budget plan on Friday." in text and "2024-05-08" in text
    assert "tomatoes" not in text and "预算" not in text  # unrelated records are neither quoted nor cited


async def test_every_citation_is_a_record_of_the_context_that_the_answer_quoted(provider):
    questions: list[tuple[str, Language]] = [("预算和西湖", "zh-CN"), ("budget garden Berlin", "en"), ("牛奶", "zh-CN")]
    for question, language in questions:
        chunks = await ask(provider, question, language)
        text = "".join(c.text for c in chunks)
        cited = chunks[-1].citations
        assert cited and len(set(cited)) == len(cited)
        by_id = {r.id: r for r in ALL_RECORDS}
        for record_id in cited:
            assert any(bare(s) in text for s in sentences(by_id[record_id].content)), record_id
        for record in ALL_RECORDS:
            if record.id not in cited:
                assert not any(len(s) > 8 and bare(s) in text for s in sentences(record.content)), record.id

    # Records outside the context are never cited, whatever they contain.
    chunks = await ask(provider, "预算", records=(WEST_LAKE, GARDEN))
    assert chunks[-1].citations == ()


@pytest.mark.parametrize(
    ("question", "language", "message"),
    [
        ("我的护照放在哪里了？", "zh-CN", "我在你的记录里没有找到相关内容。"),
        ("Where did I put my passport?", "en", "I found nothing about that in your records."),
        ("你好", "zh-CN", "我在你的记录里没有找到相关内容。"),
    ],
)
async def test_nothing_relevant_is_said_plainly_and_cites_nothing(provider, question, language, message):
    chunks = await ask(provider, question, language)
    text = "".join(c.text for c in chunks)
    assert message in text and chunks[-1].citations == ()
    assert "离线模式" in text or "Offline mode" in text


async def test_a_matching_memory_is_mentioned_and_a_follow_up_borrows_the_previous_question(provider):
    memories = ("用户喜欢西湖。", "User is allergic to peanuts.")
    text = "".join(c.text for c in await ask(provider, "西湖怎么样？", memories=memories))
    assert "你之前告诉过我：用户喜欢西湖。" in text and "peanuts" not in text

    history = (ChatTurn("user", "What did Sarah say about the budget?"), ChatTurn("assistant", "…"))
    chunks = await ask(provider, "And then?", "en", history=history)
    assert chunks[-1].citations == ("rec-marketing",)


async def test_answers_are_deterministic(provider):
    first = await ask(provider, "What did Sarah say about the budget?", "en")
    second = await ask(LocalProvider(), "What did Sarah say about the budget?", "en")
    assert first == second


# --- digests ---------------------------------------------------------------------------


async def test_daily_digest_counts_kinds_and_lists_every_record_once(provider):
    day = (BUDGET_MEETING, WEST_LAKE, GROCERIES, MARKETING, GARDEN)
    digest, usage = await provider.digest(day, "day", "zh-CN")

    assert usage.total == 0
    assert digest.startswith("# 今日回顾")
    assert "共 5 条记录：笔记 2 条、日记 1 条、待办 1 条、照片 1 条。" in digest
    items = [line for line in digest.splitlines() if line.startswith("- ") and " — " in line]
    assert len(items) == 5
    for title in ("周会：预算讨论", "买菜", "Planted tomatoes and basil in the garden"):
        assert sum(title in item for item in items) == 1
    assert "14:30" in digest and "## #工作" in digest and "## 亮点" in digest
    assert digest.rstrip().endswith("_离线模式：未配置大语言模型，本回顾由你的记录自动整理而成。_")


async def test_weekly_digest_groups_by_day_in_english(provider):
    digest, _ = await provider.digest(ALL_RECORDS, "week", "en")

    assert digest.startswith("# Weekly digest · 2024-05-06 – 2024-05-08")
    assert "5 records: 2 notes, 1 diary entry, 1 todo, 1 photo." in digest
    days = [line for line in digest.splitlines() if line.startswith("## 2024-")]
    assert days == ["## 2024-05-06 Monday", "## 2024-05-07 Tuesday", "## 2024-05-08 Wednesday"]
    assert digest.count("\n- ") >= 5 and "## Highlights" in digest and "Offline mode" in digest


async def test_empty_period_gives_a_friendly_digest(provider):
    digest, _ = await provider.digest((), "day", "en")
    assert digest.startswith("# Daily digest") and "Nothing recorded today" in digest
    assert "本周回顾" in (await provider.digest((), "week", "zh-CN"))[0]


# --- memories --------------------------------------------------------------------------


async def test_chinese_memories_allergy_is_long_term_and_trip_short_term(provider):
    memories, usage = await provider.extract_memories("我对花生过敏。我下周三要去上海出差。我们明天去北京。", "zh-CN")

    assert usage.total == 0
    by_content = {m.content: m for m in memories}
    assert set(by_content) == {"用户对花生过敏。", "用户下周三要去上海出差。"}  # "我们" is not the user alone
    allergy, trip = by_content["用户对花生过敏。"], by_content["用户下周三要去上海出差。"]
    assert allergy.long_term and not trip.long_term
    assert allergy.importance > trip.importance and 0.3 <= trip.importance <= 0.9


async def test_english_memories_and_deduplication(provider):
    text = (
        "I'm allergic to peanuts. I'm going to Shanghai next Wednesday for a business trip. "
        "My name is Anna. I love hiking, but I hate running. I'm a bit tired. Do I like tea? "
        "I'm allergic to peanuts!"
    )
    memories, _ = await provider.extract_memories(text, "en")
    by_content = {m.content: m for m in memories}

    assert list(by_content) == [
        "User is allergic to peanuts.",
        "User is going to Shanghai next Wednesday for a business trip.",
        "User's name is Anna.",
        "User loves hiking.",
        "User hates running.",
    ]
    assert by_content["User is allergic to peanuts."].long_term
    assert by_content["User's name is Anna."].long_term
    assert not by_content["User is going to Shanghai next Wednesday for a business trip."].long_term
    assert all(0.3 <= m.importance <= 0.9 for m in memories)


async def test_nothing_personal_gives_no_memories(provider):
    assert (await provider.extract_memories("会议在三楼举行。The weather was nice.", "zh-CN"))[0] == []
