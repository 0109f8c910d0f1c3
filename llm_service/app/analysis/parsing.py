"""Defensive reading of model output, for providers without JSON mode (DeepSeek, local models)
and for the ones with it that still wrap their JSON in prose.

The JSON object is dug out of code fences, reasoning blocks and surrounding prose, repaired
where that is safe (trailing commas, single quotes, typographic quotes), and validated: a
title, a summary and 1–5 tags, cleaned of prompt echoes ("Title:", "标题："), quotes and
Markdown. When no JSON is usable, labelled lines (`Title: ...`, `标签：a、b`) are tried;
when those fail too, `bad_response`. The model's text never goes into an error message.
The remote provider reads analyses (and, with `iter_json_values`, memories) through it.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError, ValidationInfo, field_validator

from common.api_clients.llm.errors import ProviderBadResponse
from common.records.tags import normalise_tag
from llm_service.app.providers.base import Analysis

MAX_TITLE = 60
MAX_SUMMARY = 300
MAX_TAGS = 5
MAX_SCAN = 20_000  # characters of model output looked at
MAX_CANDIDATES = 24

_REASONING = re.compile(r"<(think|thinking|reasoning)>.*?(</\1>|\Z)", re.S | re.I)
_FENCE = re.compile(r"```[ \t]*[\w+-]*[ \t]*\r?\n?(.*?)```", re.S)
_EMPHASIS = re.compile(r"\*\*|__|`+|~~")
_BULLET = re.compile(r"^\s*(?:[-*•>]+|\d+[.)、])\s+")
_LABELS = {
    "title": r"title|标题|題目|题目|heading",
    "summary": r"summary|摘要|总结|概要|简介|概述",
    "tags": r"tags?|标签|關鍵詞|关键词|关键字|keywords?",
}
_ECHO = {field: re.compile(rf"^\s*(?:{labels})\s*[:：]\s*", re.I) for field, labels in _LABELS.items()}
_LABEL_LINE = re.compile(
    r"^\s*(?:[-*•>]+\s*|\d+[.)、]\s*)?[*_`]*\s*(?P<label>"
    + "|".join(f"(?P<{field}>{labels})" for field, labels in _LABELS.items())
    + r")\s*[*_`]*\s*[:：]\s*[*_`]*\s*(?P<value>.*)$",
    re.I,
)
_JUNK_TITLES = {"title", "标题", "untitled", "无标题", "n/a", "none", "null", "string", "...", "…", "-"}
_PREAMBLES = re.compile(r"^(?:here is|here's|here are|sure[,!.]|certainly|以下是|好的[，,。]|当然)", re.I)
_PLACEHOLDER = re.compile(r"^[<{\[].*[>}\]]$")
_WRAPPERS = [
    ('"', '"'),
    ("'", "'"),
    ("“", "”"),
    ("‘", "’"),
    ("「", "」"),
    ("『", "』"),
    ("【", "】"),
    ("*", "*"),
    ("_", "_"),
]
_STRAY_QUOTES = "\"'“”‘’「」『』"
_TRAILING_PUNCT = "。.,，;；:：、"
_TAG_SPLIT = re.compile(r"[,，、;；|\n]+")
_TAG_JUNK = re.compile(r"(?:tag|标签)\s*\d*", re.I)


# -- finding JSON -------------------------------------------------------------------


def strip_reasoning(text: str) -> str:
    """The answer without `<think>...</think>` blocks (reasoning models put them first)."""
    return _REASONING.sub("", text)


def _balanced_segments(text: str) -> Iterator[str]:
    """Substrings from each `{` or `[` to its matching bracket, skipping brackets in strings."""
    starts = [i for i, ch in enumerate(text) if ch in "{["][:MAX_CANDIDATES]
    for start in starts:
        depth, quote, escaped = 0, "", False
        for i in range(start, len(text)):
            ch = text[i]
            if quote:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == quote:
                    quote = ""
            elif ch in "\"'":
                quote = ch
            elif ch in "{[":
                depth += 1
            elif ch in "}]":
                depth -= 1
                if depth == 0:
                    yield text[start : i + 1]
                    break


def _strip_trailing_commas(text: str) -> str:
    out: list[str] = []
    quote, escaped = "", False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "," and text[i + 1 :].lstrip()[:1] in ("}", "]"):
            continue
        out.append(ch)
    return "".join(out)


def _loads_lenient(candidate: str) -> Any:
    """JSON, then JSON with trailing commas removed, then typographic quotes as quotes, then a
    Python literal (single quotes); None when none of them reads."""
    attempts = [candidate, _strip_trailing_commas(candidate)]
    if '"' not in candidate and "“" in candidate:
        attempts.append(_strip_trailing_commas(candidate.replace("“", '"').replace("”", '"')))
    for attempt in attempts:
        try:
            return json.loads(attempt, strict=False)
        except (ValueError, RecursionError):
            continue
    if "'" in candidate and len(candidate) < 20_000:
        try:
            return ast.literal_eval(attempts[1])
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
    return None


def iter_json_values(text: str) -> Iterator[Any]:
    """Every JSON value (object or array) that can be read out of `text`, most likely first:
    fenced blocks, the whole text, then bracketed segments inside prose."""
    text = strip_reasoning(text[:MAX_SCAN]).strip()
    candidates = [m.group(1).strip() for m in _FENCE.finditer(text)]
    candidates.append(text)
    seen: set[str] = set()
    for source in [*candidates, *(s for c in candidates for s in _balanced_segments(c))]:
        if not source or source in seen or source[0] not in "{[":
            continue
        seen.add(source)
        value = _loads_lenient(source)
        if isinstance(value, dict | list):
            yield value


def extract_json(text: str, kind: type | tuple[type, ...] = (dict, list)) -> Any | None:
    """The first JSON value of the given kind in `text`, or None."""
    return next((value for value in iter_json_values(text) if isinstance(value, kind)), None)


# -- cleaning fields ----------------------------------------------------------------


def _unwrap_quotes(text: str) -> str:
    changed = True
    while changed and len(text) >= 2:
        changed = False
        for left, right in _WRAPPERS:
            if text.startswith(left) and text.endswith(right):
                text, changed = text[len(left) : -len(right)].strip(), True
    return text.strip(_STRAY_QUOTES).strip()


def _clean_line(text: str, field: str) -> str:
    text = _EMPHASIS.sub("", strip_reasoning(text))
    text = text.lstrip("#").strip()
    text = _BULLET.sub("", text)
    for _ in range(3):  # "Title: 标题：X" happens
        text = _ECHO[field].sub("", _unwrap_quotes(text)).strip()
    return _unwrap_quotes(text)


def _cut(text: str, limit: int, *, sentence: bool) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if sentence:
        ends = [cut.rfind(mark) for mark in "。！？.!?"]
        end = max(ends)
        if end >= limit // 2:
            return cut[: end + 1]
        return cut[: limit - 1].rstrip() + "…"
    space = cut.rfind(" ")
    if space >= limit // 2:  # Latin script: do not cut a word in half
        cut = cut[:space]
    return cut.rstrip(_TRAILING_PUNCT + " ")


def clean_title(value: Any) -> str:
    """One clean line of at most 60 characters; ValueError for an echo, a placeholder or nothing."""
    if isinstance(value, list) and value and isinstance(value[0], str):
        value = value[0]
    if not isinstance(value, str):
        raise ValueError("the title is not text")
    lines = [line for line in strip_reasoning(value).splitlines() if line.strip()]
    if not lines:
        raise ValueError("the title is empty")
    title = " ".join(_clean_line(lines[0], "title").split())
    title = _unwrap_quotes(title.rstrip(_TRAILING_PUNCT)).rstrip(_TRAILING_PUNCT)  # “X”。
    if not title or title.casefold() in _JUNK_TITLES or not any(ch.isalnum() for ch in title):
        raise ValueError("the title is empty or a placeholder")
    if _PLACEHOLDER.match(title) or _PREAMBLES.match(title):
        raise ValueError("the title is a prompt echo")
    return _cut(title, MAX_TITLE, sentence=False)


def clean_summary(value: Any) -> str:
    """At most 300 characters of plain text on one line, cut at a sentence end when possible."""
    if isinstance(value, list):
        value = " ".join(str(item) for item in value if isinstance(item, str))
    if not isinstance(value, str):
        raise ValueError("the summary is not text")
    lines = [_clean_line(line, "summary") for line in strip_reasoning(value).splitlines()]
    summary = " ".join(" ".join(lines).split())
    if not summary or not any(ch.isalnum() for ch in summary) or _PREAMBLES.match(summary):
        raise ValueError("the summary is empty")
    return _cut(summary, MAX_SUMMARY, sentence=True)


def _tag_key(tag: str) -> str:
    return re.sub(r"[\s_\-]+", "", tag.casefold())


def _raw_tags(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.strip()
        if value.count("#") >= 2 and not _TAG_SPLIT.search(value):
            return [part for part in value.split("#")]
        return _TAG_SPLIT.split(value)
    if isinstance(value, list | tuple):
        return [item if isinstance(item, str) else str(item) for item in value if isinstance(item, str | int)]
    raise ValueError("tags are not a list")


def clean_tags(value: Any, existing_tags: Iterable[str] = ()) -> list[str]:
    """1–5 normalised tags; a suggestion matching an existing tag (ignoring case, spaces,
    hyphens) becomes that tag."""
    existing: dict[str, str] = {}
    for known in existing_tags:
        existing.setdefault(_tag_key(known), known)
    tags: list[str] = []
    for raw in _raw_tags(value):
        cleaned = _clean_line(raw, "tags").strip("#").strip()
        try:
            normalised = normalise_tag(cleaned)
        except ValueError:
            continue  # longer than a tag may be: a sentence, not a tag
        if not normalised or _TAG_JUNK.fullmatch(normalised) or not any(ch.isalnum() for ch in normalised):
            continue
        tag = existing.get(_tag_key(normalised), normalised)
        if tag not in tags:
            tags.append(tag)
    if not tags:
        raise ValueError("no usable tags")
    return tags[:MAX_TAGS]


class AnalysisPayload(BaseModel):
    """What a model's analysis must amount to; the cleaning happens in the validators."""

    title: str
    summary: str
    tags: list[str]

    @field_validator("title", mode="before")
    @classmethod
    def _title(cls, value: Any) -> str:
        return clean_title(value)

    @field_validator("summary", mode="before")
    @classmethod
    def _summary(cls, value: Any) -> str:
        return clean_summary(value)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any, info: ValidationInfo) -> list[str]:
        return clean_tags(value, (info.context or {}).get("existing_tags", ()))


# -- reading an analysis ------------------------------------------------------------


def _fields_of(data: dict[str, Any]) -> dict[str, Any]:
    """title/summary/tags from an object whose keys may be Chinese, capitalised or nested."""
    found: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        for field in _LABELS:
            if field not in found and re.fullmatch(rf"\s*(?:{_LABELS[field]})\s*", key, re.I):
                found[field] = value
    if "title" not in found:
        nested = [value for value in data.values() if isinstance(value, dict)]
        if len(nested) == 1:
            return _fields_of(nested[0])
    return found


def _fields_from_lines(text: str) -> dict[str, Any]:
    """`Title: ...`, `摘要：...`, `Tags: a, b` (values may continue on following lines)."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in strip_reasoning(text).splitlines():
        match = _LABEL_LINE.match(line)
        if match:
            current = next(field for field in _LABELS if match.group(field))
            if current in found:
                current = None  # only the first occurrence of a label counts
                continue
            found[current] = [match.group("value")] if match.group("value").strip() else []
        elif not line.strip():
            if current and found.get(current):
                current = None
        elif current in ("summary", "tags") or (current == "title" and not found["title"]):
            found[current].append(line)
    fields: dict[str, Any] = {}
    if found.get("title"):
        fields["title"] = found["title"][0]
    if found.get("summary"):
        fields["summary"] = " ".join(found["summary"])
    if found.get("tags"):
        fields["tags"] = "\n".join(found["tags"])
    return fields


def parse_analysis(text: str, existing_tags: Sequence[str] = ()) -> Analysis:
    """Title, summary and tags from a model's answer, or `ProviderBadResponse`."""
    context = {"existing_tags": tuple(existing_tags)}
    if isinstance(text, str) and text.strip():
        attempts = [_fields_of(value) for value in iter_json_values(text) if isinstance(value, dict)]
        attempts.append(_fields_from_lines(text[:MAX_SCAN]))
        for fields in attempts:
            if not fields:
                continue
            try:
                payload = AnalysisPayload.model_validate(fields, context=context)
            except ValidationError:
                continue
            return Analysis(payload.title, payload.summary, tuple(payload.tags))
    raise ProviderBadResponse("The model's answer had no usable title, summary and tags")
