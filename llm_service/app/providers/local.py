"""The offline provider `local`: useful results with no network and no model.

Titles and summaries are taken from the record itself, tags are its keywords (jieba's TF-IDF
for Chinese, word frequency for English) with the user's existing tags first, answers quote
and cite the records that match the question, digests count, group and list a period's
records, and memories come from first-person sentence patterns. Every answer and digest says
plainly that it is the offline mode. Nothing is spent: usage is always zero tokens. It has
no speech-to-text and no vision (`can_transcribe` and `can_see_images` are False).

The work is CPU-bound (jieba, TextRank), so it runs in a worker thread and never stalls the
event loop; the same input always gives the same output.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Literal

from common.api_clients.llm.results import TokenUsage
from llm_service.app.providers import local_answer, local_digest, local_memories
from llm_service.app.providers.base import (
    Analysis,
    AnswerChunk,
    ChatContext,
    Language,
    MemoryCandidate,
    SourceRecord,
    Transcription,
)
from llm_service.app.providers.extractive import make_tags, make_title, summarize
from llm_service.app.providers.text import detect_language

MAX_ANALYSED_CHARS = 20_000  # longer records are analysed on their beginning
NO_USAGE = TokenUsage()

_UNTITLED: dict[Language, str] = {"zh-CN": "无标题记录", "en": "Untitled record"}


class LocalProvider:
    """Extractive and keyword methods; implements `Provider`."""

    name = "local"
    is_remote = False
    can_transcribe = False
    can_see_images = False

    async def analyze(
        self, record: SourceRecord, existing_tags: tuple[str, ...], language: Language
    ) -> tuple[Analysis, TokenUsage]:
        """Title, summary and tags from the record's own words, in the record's language."""
        return await asyncio.to_thread(_analyze, record, existing_tags, language), NO_USAGE

    async def answer(self, context: ChatContext) -> AsyncIterator[AnswerChunk]:
        """The offline note, then one chunk per line of quotes; the last chunk cites them."""
        reply = await asyncio.to_thread(local_answer.compose, context)
        known = {record.id for record in context.records}
        for index, line in enumerate(reply.lines):
            separator = "" if index == 0 else "\n\n" if index == 1 else "\n"  # a blank line after the note
            yield AnswerChunk(text=separator + line)
        yield AnswerChunk(done=True, citations=tuple(i for i in reply.citations if i in known), usage=NO_USAGE)

    async def digest(
        self, records: tuple[SourceRecord, ...], period: Literal["day", "week"], language: Language
    ) -> tuple[str, TokenUsage]:
        """A Markdown digest: counts by kind, records grouped and listed, highlights."""
        return await asyncio.to_thread(local_digest.compose, records, period, language), NO_USAGE

    async def extract_memories(self, text: str, language: Language) -> tuple[list[MemoryCandidate], TokenUsage]:
        """First-person facts: identity, preferences, allergies (long-term) and plans (short-term)."""
        return await asyncio.to_thread(local_memories.extract, text), NO_USAGE

    async def transcribe(self, audio: bytes, *, filename: str, content_type: str, language: Language) -> Transcription:
        """Never: there is no speech-to-text offline (callers check `can_transcribe`)."""
        raise NotImplementedError("the offline provider has no speech-to-text")

    async def describe_image(
        self, image_jpeg: bytes, *, ocr_text: str, language: Language
    ) -> tuple[Analysis, TokenUsage]:
        """Never: there is no vision model offline (callers check `can_see_images`)."""
        raise NotImplementedError("the offline provider has no vision model")


def _analyze(record: SourceRecord, existing_tags: tuple[str, ...], language: Language) -> Analysis:
    content = record.content[:MAX_ANALYSED_CHARS]
    language = detect_language("\n".join(filter(None, [record.title, content])), language)
    title = make_title(content, record.title) or _UNTITLED[language]
    summary = summarize(content, language)
    tags = make_tags(content, record.title, existing_tags, language)
    return Analysis(title=title, summary=summary, tags=tags)
