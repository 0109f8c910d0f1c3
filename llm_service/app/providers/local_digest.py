"""The offline provider's digests: a period's records counted, grouped and listed in Markdown.

A day is grouped by its most used tags (records without one under "Other"), a week by day.
Every record of the period is listed once, as its title (or first sentence) and time; the
three most substantial ones are highlighted with their extractive summaries.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from llm_service.app.providers.base import Language, SourceRecord
from llm_service.app.providers.extractive import make_title, summarize
from llm_service.app.providers.text import detect_language, plain_text

MAX_TAG_GROUPS = 5
HIGHLIGHTS = 3
Period = Literal["day", "week"]

_HEADING: dict[tuple[Language, Period], str] = {
    ("zh-CN", "day"): "今日回顾",
    ("zh-CN", "week"): "本周回顾",
    ("en", "day"): "Daily digest",
    ("en", "week"): "Weekly digest",
}
_EMPTY: dict[tuple[Language, Period], str] = {
    ("zh-CN", "day"): "今天还没有记录。随手记下一件小事，明天的回顾就会有内容了。",
    ("zh-CN", "week"): "这一周还没有记录。随手记下一件小事，下周的回顾就会有内容了。",
    ("en", "day"): "Nothing recorded today. Jot down one small thing and tomorrow's digest will have something to say.",
    ("en", "week"): "Nothing recorded this week. Jot down one small thing and next week's digest will have something.",
}
_NOTE: dict[Language, str] = {
    "zh-CN": "_离线模式：未配置大语言模型，本回顾由你的记录自动整理而成。_",
    "en": "_Offline mode: no language model is configured; this digest was compiled from your records._",
}
_KINDS: dict[Language, dict[str, str]] = {
    "zh-CN": {
        "note": "笔记",
        "diary": "日记",
        "todo": "待办",
        "photo": "照片",
        "screenshot": "截图",
        "voice": "语音",
        "link": "链接",
    },
    "en": {
        "note": "note/notes",
        "diary": "diary entry/diary entries",
        "todo": "todo/todos",
        "photo": "photo/photos",
        "screenshot": "screenshot/screenshots",
        "voice": "voice memo/voice memos",
        "link": "link/links",
    },
}
_WORDS: dict[Language, dict[str, str]] = {
    "zh-CN": {"other": "其他", "records": "记录", "highlights": "亮点", "to": " 至 "},
    "en": {"other": "Other", "records": "Records", "highlights": "Highlights", "to": " – "},
}
_WEEKDAYS: dict[Language, tuple[str, ...]] = {
    "zh-CN": ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}


def compose(records: tuple[SourceRecord, ...], period: Period, language: Language) -> str:
    """The digest in Markdown; a friendly note when nothing was recorded."""
    heading = _HEADING[(language, period)]
    if not records:
        return f"# {heading}\n\n{_EMPTY[(language, period)]}\n\n---\n{_NOTE[language]}\n"
    ordered = sorted(records, key=lambda r: (r.occurred_at, r.id))
    first, last = ordered[0].occurred_at.date(), ordered[-1].occurred_at.date()
    dates = first.isoformat() if first == last else f"{first.isoformat()}{_WORDS[language]['to']}{last.isoformat()}"
    parts = [f"# {heading} · {dates}", _counts(ordered, language)]
    groups = _groups_by_day(ordered, language) if period == "week" else _groups_by_tag(ordered, language)
    for name, members in groups:
        parts.append(f"## {name}\n" + "\n".join(_line(record, language, with_day=False) for record in members))
    highlights = _highlights(ordered, language)
    if highlights:
        parts.append(f"## {_WORDS[language]['highlights']}\n" + "\n".join(highlights))
    parts.append(f"---\n{_NOTE[language]}")
    return "\n\n".join(parts) + "\n"


def _counts(records: list[SourceRecord], language: Language) -> str:
    counts = Counter(record.kind for record in records)
    canonical = list(_KINDS["en"])
    kinds = sorted(counts, key=lambda kind: (-counts[kind], canonical.index(kind) if kind in canonical else 99, kind))
    if language == "zh-CN":
        detail = "、".join(f"{_KINDS[language].get(kind, kind)} {counts[kind]} 条" for kind in kinds)
        return f"共 {len(records)} 条记录：{detail}。"
    pieces = []
    for kind in kinds:
        singular, _, plural = _KINDS[language].get(kind, f"{kind}/{kind}s").partition("/")
        pieces.append(f"{counts[kind]} {singular if counts[kind] == 1 else plural}")
    total = f"{len(records)} record" + ("" if len(records) == 1 else "s")
    return f"{total}: {', '.join(pieces)}."


def _groups_by_tag(records: list[SourceRecord], language: Language) -> list[tuple[str, list[SourceRecord]]]:
    """Groups under the most used tags; each record goes under its most used tag."""
    counts = Counter(tag for record in records for tag in dict.fromkeys(record.tags))
    top = sorted(counts, key=lambda tag: (-counts[tag], tag))[:MAX_TAG_GROUPS]
    if not top:
        return [(_WORDS[language]["records"], records)]
    groups: dict[str, list[SourceRecord]] = {tag: [] for tag in top}
    other: list[SourceRecord] = []
    for record in records:
        tag = next((t for t in top if t in record.tags), None)
        (groups[tag] if tag is not None else other).append(record)
    named = [(f"#{tag}", members) for tag, members in groups.items() if members]
    return named + ([(_WORDS[language]["other"], other)] if other else [])


def _groups_by_day(records: list[SourceRecord], language: Language) -> list[tuple[str, list[SourceRecord]]]:
    days: dict[str, list[SourceRecord]] = {}
    for record in records:
        day = record.occurred_at
        days.setdefault(f"{day.date().isoformat()} {_WEEKDAYS[language][day.weekday()]}", []).append(record)
    return list(days.items())


def _title(record: SourceRecord, language: Language) -> str:
    title = make_title(record.content, record.title)
    if title:
        return title
    kind = _KINDS[language].get(record.kind, record.kind).partition("/")[0]
    return kind[:1].upper() + kind[1:]


def _line(record: SourceRecord, language: Language, *, with_day: bool) -> str:
    time = record.occurred_at.strftime("%m-%d %H:%M" if with_day else "%H:%M")
    return f"- {_title(record, language)} — {time}"


def _highlights(records: list[SourceRecord], language: Language) -> list[str]:
    """The three records with the most to say, each with its summary."""
    sized = [(len(plain_text(record.content)), record) for record in records]
    substantial = sorted((item for item in sized if item[0] > 0), key=lambda item: (-item[0], item[1].occurred_at))
    lines = []
    for _, record in substantial[:HIGHLIGHTS]:
        summary = summarize(record.content, detect_language(record.content, language))
        time = record.occurred_at.strftime("%m-%d %H:%M")
        title = _title(record, language)
        lines.append(
            f"- **{title}**（{time}）：{summary}" if language == "zh-CN" else f"- **{title}** ({time}): {summary}"
        )
    return lines
