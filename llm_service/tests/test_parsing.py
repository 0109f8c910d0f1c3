"""Defensive parsing of model output: JSON dug out of prose and fences, repaired where safe,
validated into clean titles, summaries and tags, with labelled lines as the fallback."""

from __future__ import annotations

import pytest

from common.api_clients.llm import ProviderBadResponse
from llm_service.app.analysis.parsing import (
    MAX_SUMMARY,
    MAX_TITLE,
    clean_tags,
    clean_title,
    extract_json,
    parse_analysis,
)

PLAIN = '{"title": "Weekend hike", "summary": "Climbed Xiangshan with friends.", "tags": ["hiking", "friends"]}'


def test_plain_json() -> None:
    result = parse_analysis(PLAIN)
    assert result.title == "Weekend hike"
    assert result.summary == "Climbed Xiangshan with friends."
    assert result.tags == ("hiking", "friends")


def test_fenced_json_with_prose_around_it() -> None:
    text = f"Sure! Here is the analysis you asked for:\n\n```json\n{PLAIN}\n```\n\nLet me know if you need more."
    assert parse_analysis(text).title == "Weekend hike"


def test_json_inside_prose_without_a_fence() -> None:
    text = f"The record is about a hike {{see below}}. Result: {PLAIN} Hope this helps."
    assert parse_analysis(text).tags == ("hiking", "friends")


def test_deepseek_like_output_with_reasoning_fence_and_trailing_commas() -> None:
    text = """<think>
用户要求我为记录生成标题。记录内容是关于爬山的。{"title": "不是这个"}
</think>
好的，以下是分析结果：
```json
{
  "title": "标题：周末爬香山",
  "summary": "周六和朋友一起去香山爬山，天气晴朗，红叶很美。",
  "tags": ["运动", "周末", "朋友",],
}
```"""
    result = parse_analysis(text)
    assert result.title == "周末爬香山"
    assert result.summary.startswith("周六和朋友")
    assert result.tags == ("运动", "周末", "朋友")


def test_single_quoted_python_style_output() -> None:
    text = "{'title': 'Lunch with Anna', 'summary': \"We talked about Anna's new job.\", 'tags': ['Food', 'Friends']}"
    result = parse_analysis(text)
    assert result.title == "Lunch with Anna"
    assert result.summary == "We talked about Anna's new job."
    assert result.tags == ("food", "friends")


def test_typographic_quotes_are_read_as_quotes() -> None:
    text = "{“title”: “读书笔记”, “summary”: “读完了《三体》。”, “tags”: [“阅读”]}"
    assert parse_analysis(text).title == "读书笔记"


def test_chinese_keys_and_nested_objects() -> None:
    text = '{"result": {"标题": "项目周会", "摘要": "讨论了第三季度的计划。", "标签": "工作、会议"}}'
    result = parse_analysis(text)
    assert (result.title, result.tags) == ("项目周会", ("工作", "会议"))


def test_english_labelled_lines_when_there_is_no_json() -> None:
    text = """**Title:** "Team sync notes"
**Summary:** Discussed the Q3 roadmap
and the hiring plan.

**Tags:** Work, Meetings, #planning"""
    result = parse_analysis(text)
    assert result.title == "Team sync notes"
    assert result.summary == "Discussed the Q3 roadmap and the hiring plan."
    assert result.tags == ("work", "meetings", "planning")


def test_chinese_labelled_lines() -> None:
    text = "标题：读《三体》笔记\n摘要：记录了读完《三体》后的感想。\n标签：阅读、科幻、书"
    result = parse_analysis(text)
    assert result.title == "读《三体》笔记"
    assert result.summary == "记录了读完《三体》后的感想。"
    assert result.tags == ("阅读", "科幻", "书")


def test_labelled_lines_with_bulleted_tags_on_following_lines() -> None:
    text = "Title: Groceries\nSummary: Things to buy this week.\nTags:\n- shopping\n- todo\n"
    assert parse_analysis(text).tags == ("shopping", "todo")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Title: Weekend hike", "Weekend hike"),
        ("标题：周末爬山", "周末爬山"),
        ("**Title:** Weekend hike", "Weekend hike"),
        ("# Weekend hike", "Weekend hike"),
        ('"Weekend hike"', "Weekend hike"),
        ("「周末爬山」", "周末爬山"),
        ("“周末爬山”。", "周末爬山"),
        ("*Weekend hike*", "Weekend hike"),
        ("`Weekend` hike", "Weekend hike"),
        ("Title: 标题：Weekend hike", "Weekend hike"),
        ("Weekend hike\nSecond line of nonsense", "Weekend hike"),
        ("《三体》读后感", "《三体》读后感"),
    ],
)
def test_titles_lose_echoes_quotes_and_markdown(raw: str, clean: str) -> None:
    assert clean_title(raw) == clean


@pytest.mark.parametrize(
    "raw", ["", "   ", "Title:", "标题：", "Untitled", "{title}", "<title>", "...", "Here is the title: Hike", "***"]
)
def test_empty_or_echoed_titles_are_rejected(raw: str) -> None:
    with pytest.raises(ValueError):
        clean_title(raw)


def test_a_prompt_echo_in_json_falls_back_to_clean_lines() -> None:
    text = '{"title": "{title}", "summary": "...", "tags": []}\nTitle: Real title\nSummary: Real summary.\nTags: real'
    result = parse_analysis(text)
    assert (result.title, result.summary, result.tags) == ("Real title", "Real summary.", ("real",))


def test_long_titles_and_summaries_are_cut_cleanly() -> None:
    long_title = "A very long title about " + "many different things " * 6
    long_summary = "This is one sentence. " * 30
    text = f'{{"title": "{long_title}", "summary": "{long_summary}", "tags": ["x"]}}'
    result = parse_analysis(text)
    assert 0 < len(result.title) <= MAX_TITLE
    assert not result.title.endswith(" ") and result.title.split()[-1] in long_title.split()
    assert len(result.summary) <= MAX_SUMMARY
    assert result.summary.endswith(".")
    chinese = parse_analysis(f'{{"title": "{"很长的标题" * 20}", "summary": "{"很长的摘要。" * 80}", "tags": ["长"]}}')
    assert len(chinese.title) <= MAX_TITLE and len(chinese.summary) <= MAX_SUMMARY


def test_tags_are_normalised_deduplicated_and_at_most_five() -> None:
    tags = ["#Work", "work", " Travel ", "tag1", "a" * 40, "!!!", "Food", "family", "music", "books", "art"]
    assert clean_tags(tags) == ["work", "travel", "food", "family", "music"]


def test_existing_tags_are_preferred_when_a_suggestion_matches() -> None:
    existing = ["machine-learning", "旅行", "Reading"]
    assert clean_tags(["Machine Learning", "旅行", "reading", "new"], existing) == [
        "machine-learning",
        "旅行",
        "Reading",
        "new",
    ]


def test_tags_given_as_one_string() -> None:
    assert clean_tags("#travel #food") == ["travel", "food"]
    assert clean_tags("工作，会议；计划") == ["工作", "会议", "计划"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I cannot help with that.",
        '{"title": "Hike"}',  # no summary, no tags
        '{"title": "Hike", "summary": "Went hiking.", "tags": []}',  # no tags
        '{"title": "", "summary": "Went hiking.", "tags": ["x"]}',
        "[1, 2, 3]",
        "```json\n{broken\n```",
    ],
)
def test_unusable_output_is_a_bad_response_without_the_text(text: str) -> None:
    with pytest.raises(ProviderBadResponse) as caught:
        parse_analysis(text)
    assert caught.value.error_class == "bad_response"
    if text:
        assert text not in str(caught.value)


def test_extract_json_prefers_fenced_blocks_and_skips_reasoning() -> None:
    text = '<think>{"wrong": true}</think> [see 1] ```json\n{"memories": []}\n``` trailing {"other": 1}'
    assert extract_json(text) == {"memories": []}
    assert extract_json("no json at all") is None
    assert extract_json('Answer: [{"content": "likes tea"}]', list) == [{"content": "likes tea"}]


def test_braces_inside_strings_do_not_confuse_the_scan() -> None:
    text = 'Output: {"title": "Set {x} and ]y[", "summary": "Braces } inside.", "tags": ["math"]} done'
    assert parse_analysis(text).title == "Set {x} and ]y["


def test_huge_output_is_not_scanned_forever() -> None:
    text = "{" * 50_000 + PLAIN
    with pytest.raises(ProviderBadResponse):
        parse_analysis(text)
