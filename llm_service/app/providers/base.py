"""What every LLM provider offers the applications of llm_service.

Two kinds implement it: the offline provider `local` (no network, no model: extractive
and keyword methods) and `remote` (any OpenAI-compatible endpoint, through
`common.api_clients.llm` with the prompts in `llm_service/res/prompts/`). Applications
(analysis, chat, memories, digests, extraction) speak only this protocol. Speech-to-text and
vision are optional: `can_transcribe` and `can_see_images` say whether a provider has them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from common.api_clients.llm.results import TokenUsage

if TYPE_CHECKING:
    from common.records.models import Record

Language = Literal["zh-CN", "en"]


@dataclass(frozen=True)
class SourceRecord:
    """A record given to a provider: only what the provider may see."""

    id: str
    kind: str
    title: str | None
    content: str
    tags: tuple[str, ...]
    occurred_at: datetime


def source_of(record: Record, extracted: Sequence[str] = ()) -> SourceRecord:
    """What a provider may see of a stored record (never its owner, device or AI fields):
    its content, followed by what was read out of its link and attachments (`extracted`,
    from `common.records.extraction.extracted_texts`), so answers can cite a screenshot's
    words or a voice memo's."""
    return SourceRecord(
        id=record.id,
        kind=record.kind,
        title=record.title,
        content="\n\n".join([record.content, *extracted]) if extracted else record.content,
        tags=tuple(record.tags or ()),
        occurred_at=record.occurred_at,
    )


@dataclass(frozen=True)
class Analysis:
    """What analysis fills in on a record: validated, never a prompt echo."""

    title: str
    summary: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class ChatTurn:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class ChatContext:
    """Everything an answer may draw on. Citations may name only these records' ids."""

    question: str
    history: tuple[ChatTurn, ...] = ()
    records: tuple[SourceRecord, ...] = ()
    memories: tuple[str, ...] = ()
    language: Language = "zh-CN"


@dataclass(frozen=True)
class AnswerChunk:
    """One piece of a streamed answer; the last one has `done=True`, the citations and usage."""

    text: str = ""
    done: bool = False
    citations: tuple[str, ...] = ()
    usage: TokenUsage = field(default_factory=TokenUsage)


@dataclass(frozen=True)
class MemoryCandidate:
    content: str
    importance: float  # 0..1
    long_term: bool


@dataclass(frozen=True)
class Transcription:
    """What speech-to-text heard in a voice memo, and which model heard it."""

    text: str
    model: str
    usage: TokenUsage = field(default_factory=TokenUsage)
    duration_seconds: float | None = None  # when the provider said


class Provider(Protocol):
    name: str
    is_remote: bool  # True when text leaves the machine (ai_opt_out records never go there)

    async def analyze(
        self, record: SourceRecord, existing_tags: tuple[str, ...], language: Language
    ) -> tuple[Analysis, TokenUsage]:
        """Title, summary and tags for one record, in the record's language."""
        ...

    def answer(self, context: ChatContext) -> AsyncIterator[AnswerChunk]:
        """Stream an answer grounded in `context`; the final chunk carries the citations."""
        ...

    async def digest(
        self, records: tuple[SourceRecord, ...], period: Literal["day", "week"], language: Language
    ) -> tuple[str, TokenUsage]:
        """A Markdown digest of a period's records."""
        ...

    async def extract_memories(self, text: str, language: Language) -> tuple[list[MemoryCandidate], TokenUsage]:
        """Facts worth remembering about the user from a record or a chat message."""
        ...

    @property
    def can_transcribe(self) -> bool:
        """Whether `transcribe` may be called (the provider has speech-to-text)."""
        ...

    async def transcribe(self, audio: bytes, *, filename: str, content_type: str, language: Language) -> Transcription:
        """The text of a voice memo, `language` the user's (a hint, not a constraint on the
        provider). Only when `can_transcribe`."""
        ...

    @property
    def can_see_images(self) -> bool:
        """Whether `describe_image` may be called (the provider has a vision model)."""
        ...

    async def describe_image(
        self, image_jpeg: bytes, *, ocr_text: str, language: Language
    ) -> tuple[Analysis, TokenUsage]:
        """Title, description (as the summary) and tags of a photo or screenshot, given as a
        JPEG without metadata, with the text OCR read in it. Only when `can_see_images`."""
        ...
