"""The `remote` provider: any OpenAI-compatible endpoint, through `OpenAICompatibleClient`.

Prompts are the text files in `llm_service/res/prompts/<language>/`: a `[system]` part and
an optional `[user]` part, with `{placeholders}` filled here (values are inserted as they
are, never read as templates themselves). Model output is parsed defensively; an answer's
citations are only ids of records that were in its context. Voice memos go to the provider's
`/audio/transcriptions` and images to its vision model, when it has them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from common.api_clients.llm.client import OpenAICompatibleClient
from common.api_clients.llm.errors import ProviderBadResponse
from common.api_clients.llm.results import ChatMessage, TokenUsage
from llm_service.app.analysis.parsing import iter_json_values, parse_analysis, strip_reasoning
from llm_service.app.extraction.images import data_url
from llm_service.app.providers.base import (
    Analysis,
    AnswerChunk,
    ChatContext,
    Language,
    MemoryCandidate,
    SourceRecord,
    Transcription,
)

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "res" / "prompts"
LANGUAGES: tuple[Language, ...] = ("zh-CN", "en")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_SECTION = re.compile(r"^\[(system|user)\]\s*$", re.M)
_BRACKETED = re.compile(r"[\[【]([^\[\]【】\n]{1,120})[\]】]")
_FENCED_WHOLE = re.compile(r"^```[\w-]*\s*\n(.*)\n```\s*$", re.S)
NOTHING = "—"
# The period words of digest prompts, by language.
PERIOD_WORDS = {"en": {"day": "daily", "week": "weekly"}, "zh-CN": {"day": "每日", "week": "每周"}}
MAX_MEMORIES = 10
MAX_MEMORY_CHARS = 200
# The user's language as the ISO-639-1 hint transcription endpoints take.
TRANSCRIPTION_LANGUAGES: dict[Language, str] = {"zh-CN": "zh", "en": "en"}
# Whisper-class models often write Mandarin in traditional characters; a prompt in simplified
# Chinese (taken as the text before the memo) keeps them to simplified ones.
TRANSCRIPTION_PROMPTS: dict[Language, str] = {"zh-CN": "以下是普通话的句子。"}
MAX_OCR_CHARS = 4000


@dataclass(frozen=True)
class Prompt:
    """A prompt file: the system part and the user part (either may be empty)."""

    system: str
    user: str

    def messages(self, **values: str) -> list[dict[str, str]]:
        messages = []
        if self.system:
            messages.append({"role": "system", "content": fill(self.system, values)})
        if self.user:
            messages.append({"role": "user", "content": fill(self.user, values)})
        return messages


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace each `{name}`; a placeholder without a value is a bug in a prompt file."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"the prompt needs a value for {{{name}}}")
        return values[name]

    return _PLACEHOLDER.sub(value, template)


@lru_cache
def load_prompt(language: str, name: str) -> Prompt:
    """`res/prompts/<language>/<name>.txt`, English when the language has none."""
    path = PROMPTS_DIR / (language if language in LANGUAGES else "en") / f"{name}.txt"
    if not path.exists():
        path = PROMPTS_DIR / "en" / f"{name}.txt"
    text = path.read_text(encoding="utf-8")
    parts = {"system": "", "user": ""}
    pieces = _SECTION.split(text)
    if len(pieces) == 1:
        parts["system"] = text.strip()
    for label, body in zip(pieces[1::2], pieces[2::2], strict=True):
        parts[label] = body.strip()
    return Prompt(**parts)


def _excerpt(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


def format_source(number: int, record: SourceRecord, limit: int) -> str:
    """One numbered source as the model sees it."""
    head = f"[{number}] {record.occurred_at.date().isoformat()} · {record.kind}"
    if record.title:
        head += f" · {record.title}"
    if record.tags:
        head += " · #" + " #".join(record.tags)
    return f"{head}\n{_excerpt(record.content, limit)}"


def extract_citations(text: str, records: tuple[SourceRecord, ...]) -> tuple[str, ...]:
    """Ids of the records an answer cites, in order of first citation: `[1]`, `[2, 3]`,
    `【1】` by number, `[[id]]` or `[id]` by id. Anything else (a number out of range, an id
    that was not in the context) is dropped."""
    ids = [record.id for record in records]
    known = set(ids)
    cited: dict[str, None] = {}
    for match in _BRACKETED.finditer(text):
        for part in re.split(r"[,，、;；\s]+", match.group(1).strip()):
            part = part.strip().lstrip("#^")
            if part.isdigit() and 1 <= int(part) <= len(ids):
                cited.setdefault(ids[int(part) - 1], None)
            elif part in known:
                cited.setdefault(part, None)
    return tuple(cited)


def _unwrap_markdown(text: str) -> str:
    text = strip_reasoning(text).strip()
    match = _FENCED_WHOLE.match(text)
    return match.group(1).strip() if match else text


def _importance(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0.5
    try:
        number = float(value)
    except ValueError:
        return 0.5
    if number != number:  # NaN
        return 0.5
    if 1 < number <= 10:  # a 1–10 scale
        number /= 10
    elif 10 < number <= 100:  # a percentage
        number /= 100
    return min(1.0, max(0.0, number))


def _long_term(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "1", "long", "long_term", "long-term", "是", "长期"}
    return False


def _memory_items(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        # `[]` says "nothing to remember"; a list of numbers is prose like "[1]", not an answer.
        return value if not value or any(isinstance(item, dict | str) for item in value) else None
    if isinstance(value, dict):
        for key in ("memories", "facts", "items", "记忆"):
            if isinstance(value.get(key), list):
                return value[key]
        if "content" in value:
            return [value]
    return None


def parse_memories(text: str) -> list[MemoryCandidate]:
    """Memory candidates from a model's answer (an empty list is a valid answer)."""
    for value in iter_json_values(text):
        items = _memory_items(value)
        if items is None:
            continue
        memories: dict[str, MemoryCandidate] = {}
        for item in items:
            if isinstance(item, str):
                item = {"content": item}
            if not isinstance(item, dict):
                continue
            content = next((item[k] for k in ("content", "fact", "text", "memory") if isinstance(item.get(k), str)), "")
            content = " ".join(content.split())[:MAX_MEMORY_CHARS]
            if not content or content.casefold() in memories:
                continue
            memories[content.casefold()] = MemoryCandidate(
                content=content,
                importance=_importance(item.get("importance")),
                long_term=_long_term(item.get("long_term", item.get("type"))),
            )
        return list(memories.values())[:MAX_MEMORIES]
    raise ProviderBadResponse("The model's answer had no usable list of memories")


class RemoteProvider:
    """The Provider protocol over an OpenAI-compatible endpoint; text leaves the machine."""

    is_remote = True

    def __init__(
        self,
        client: OpenAICompatibleClient,
        *,
        name: str = "remote",
        supports_json_mode: bool = False,
        transcription_model: str | None = None,
        vision_model: str | None = None,
        temperature: float = 0.3,
        max_record_chars: int = 6000,
        max_source_chars: int = 1500,
        max_digest_records: int = 100,
        max_digest_record_chars: int = 400,
    ) -> None:
        self.name = name
        self.client = client
        self.supports_json_mode = supports_json_mode
        self.transcription_model = transcription_model
        self.vision_model = vision_model
        self.temperature = temperature
        self.max_record_chars = max_record_chars
        self.max_source_chars = max_source_chars
        self.max_digest_records = max_digest_records
        self.max_digest_record_chars = max_digest_record_chars

    async def analyze(
        self, record: SourceRecord, existing_tags: tuple[str, ...], language: Language
    ) -> tuple[Analysis, TokenUsage]:
        """Title, summary and tags, validated (never a prompt echo), existing tags preferred."""
        messages = load_prompt(language, "analyze").messages(
            kind=record.kind,
            occurred_at=record.occurred_at.isoformat(),
            existing_tags=", ".join(existing_tags) or NOTHING,
            title=record.title or NOTHING,
            content=_excerpt(record.content, self.max_record_chars),
        )
        completion = await self.client.chat(
            messages, temperature=0.2, max_tokens=600, json_mode=self.supports_json_mode
        )
        return parse_analysis(completion.text, existing_tags), completion.usage

    async def answer(self, context: ChatContext) -> AsyncGenerator[AnswerChunk, None]:
        """Stream the answer; the last chunk cites only records that were in `context`."""
        sources = "\n\n".join(
            format_source(number, record, self.max_source_chars)
            for number, record in enumerate(context.records, start=1)
        )
        system = load_prompt(context.language, "chat_system").messages(
            today=datetime.now(UTC).date().isoformat(),
            memories="\n".join(f"- {memory}" for memory in context.memories) or NOTHING,
            sources=sources or NOTHING,
        )
        history = [{"role": turn.role, "content": turn.content} for turn in context.history]
        messages = [*system, *history, {"role": "user", "content": context.question}]
        parts: list[str] = []
        usage = TokenUsage()
        async with aclosing(self.client.stream_chat(messages, temperature=self.temperature)) as stream:
            async for delta in stream:
                if delta.text:
                    parts.append(delta.text)
                    yield AnswerChunk(text=delta.text)
                if delta.done:
                    usage = delta.usage or TokenUsage()
        citations = extract_citations("".join(parts), context.records)
        yield AnswerChunk(done=True, citations=citations, usage=usage)

    async def digest(
        self, records: tuple[SourceRecord, ...], period: Literal["day", "week"], language: Language
    ) -> tuple[str, TokenUsage]:
        """A Markdown digest of the period's records."""
        chosen = records[: self.max_digest_records]
        if chosen:
            first = min(r.occurred_at for r in chosen).date().isoformat()
            last = max(r.occurred_at for r in chosen).date().isoformat()
            label = first if first == last else f"{first} – {last}"
        else:
            label = datetime.now(UTC).date().isoformat()
        words = PERIOD_WORDS.get(language, PERIOD_WORDS["en"])
        messages = load_prompt(language, "digest").messages(
            period=words[period],
            period_label=label,
            count=str(len(chosen)),
            records="\n\n".join(
                format_source(n, r, self.max_digest_record_chars) for n, r in enumerate(chosen, start=1)
            )
            or NOTHING,
        )
        completion = await self.client.chat(messages, temperature=self.temperature, max_tokens=1200)
        text = _unwrap_markdown(completion.text)
        if not text:
            raise ProviderBadResponse("The model's digest was empty")
        return text, completion.usage

    async def extract_memories(self, text: str, language: Language) -> tuple[list[MemoryCandidate], TokenUsage]:
        """Facts about the user worth remembering, deduplicated, importance in 0..1."""
        messages = load_prompt(language, "memories").messages(text=_excerpt(text, self.max_record_chars))
        completion = await self.client.chat(
            messages, temperature=0.1, max_tokens=600, json_mode=self.supports_json_mode
        )
        return parse_memories(completion.text), completion.usage

    @property
    def can_transcribe(self) -> bool:
        """True when the provider has a speech-to-text model (`transcription_model`)."""
        return bool(self.transcription_model)

    async def transcribe(self, audio: bytes, *, filename: str, content_type: str, language: Language) -> Transcription:
        """The memo's text from `/audio/transcriptions`, with the user's language as a hint."""
        if not self.transcription_model:
            raise NotImplementedError(f"the LLM provider {self.name!r} has no speech-to-text model")
        prompt = TRANSCRIPTION_PROMPTS.get(language)
        transcript = await self.client.transcribe(
            audio,
            filename=filename,
            content_type=content_type,
            model=self.transcription_model,
            language=TRANSCRIPTION_LANGUAGES.get(language),
            prompt=prompt,
        )
        # On silence, Whisper-class models tend to answer with the prompt itself.
        heard = "" if prompt and transcript.text.strip() == prompt else transcript.text
        return Transcription(
            text=heard,
            model=self.transcription_model,
            usage=transcript.usage,
            duration_seconds=transcript.duration_seconds,
        )

    @property
    def can_see_images(self) -> bool:
        """True when the provider has a model that reads images (`vision_model`)."""
        return bool(self.vision_model)

    async def describe_image(
        self, image_jpeg: bytes, *, ocr_text: str, language: Language
    ) -> tuple[Analysis, TokenUsage]:
        """Title, description and tags of an image, the OCR text given alongside it. JSON
        mode is not asked for: not every vision model accepts it, and the answer is parsed
        defensively anyway."""
        if not self.vision_model:
            raise NotImplementedError(f"the LLM provider {self.name!r} has no vision model")
        prompt = load_prompt(language, "describe_image")
        request = fill(prompt.user, {"ocr_text": _excerpt(ocr_text, MAX_OCR_CHARS) or NOTHING})
        messages: list[ChatMessage] = [
            {"role": "system", "content": prompt.system},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": request},
                    {"type": "image_url", "image_url": {"url": data_url(image_jpeg)}},
                ],
            },
        ]
        completion = await self.client.chat(messages, temperature=0.2, max_tokens=600, model=self.vision_model)
        return parse_analysis(completion.text), completion.usage
