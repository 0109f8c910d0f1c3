"""Which engine reads what: images by OCR, voice memos by the provider's speech-to-text,
PDFs and text files by their text (scanned PDFs by OCR), links by fetching the page.

OCR, PDFs and text files run here, offline, on a bounded pool (`ocr.OcrPool`). Speech goes
to the owner's provider, and only for a record that did not opt out of AI: an opted-out
record's files never leave the machine. Provider calls count against the owner's budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from common.api_clients.llm.results import TokenUsage
from common.database import Sessions, transaction
from common.records.attachments.storage import AttachmentStorage
from llm_service.app.budgets import BudgetExceeded, BudgetGuard
from llm_service.app.chat.grounding import user_language
from llm_service.app.extraction.audio import ENGINE as AUDIO_ENGINE
from llm_service.app.extraction.audio import probe_audio, transcribe_audio
from llm_service.app.extraction.documents import extract_pdf, extract_text_file
from llm_service.app.extraction.links import LinkFetcher
from llm_service.app.extraction.ocr import OcrPool, ocr_image
from llm_service.app.extraction.results import Extracted, ExtractionFailed
from llm_service.app.extraction.store import Claimed
from llm_service.app.providers.base import Language, Provider

ProviderFor = Callable[[str], Awaitable[Provider]]

KEPT_LOCAL = "this record is kept away from AI providers, and speech needs one"
NOTHING_TO_READ = "Jilu reads no text from this kind of file"
FILE_GONE = "the file is no longer stored"


class Engines:
    """The engines of one process, with what they share: the OCR pool, the link fetcher,
    the providers and budgets, the stored files."""

    def __init__(
        self,
        sessions: Sessions,
        storage: AttachmentStorage,
        ocr: OcrPool,
        links: LinkFetcher,
        provider_for: ProviderFor,
        budgets: BudgetGuard,
        *,
        max_ocr_pages: int,
        max_audio_bytes: int,
    ) -> None:
        self.sessions = sessions
        self.storage = storage
        self.ocr = ocr
        self.links = links
        self.provider_for = provider_for
        self.budgets = budgets
        self.max_ocr_pages = max_ocr_pages
        self.max_audio_bytes = max_audio_bytes

    async def read(self, claimed: Claimed) -> Extracted:
        """What is inside the claimed attachment, or behind the claimed link."""
        if claimed.target == "record":
            assert claimed.url is not None
            return await self.read_link(claimed.url)
        kind = claimed.content_type
        path = self.storage.path(claimed.owner_id, claimed.sha256)
        if kind.startswith("audio/"):
            return await self._transcribe(claimed, path)
        data = await _read_file(path)
        if kind.startswith("image/"):
            return await ocr_image(data, self.ocr)
        if kind == "application/pdf":
            return await extract_pdf(data, self.ocr, max_ocr_pages=self.max_ocr_pages)
        if kind.startswith("text/"):
            return await extract_text_file(data)
        return Extracted("skipped", "none", reason=NOTHING_TO_READ)

    async def read_link(self, url: str) -> Extracted:
        """The page behind a link record's URL; a linked PDF is read as an attached one."""
        page, pdf = await self.links.extract_link(url)
        if pdf is not None:
            read = await extract_pdf(pdf, self.ocr, max_ocr_pages=self.max_ocr_pages)
            return Extracted(read.status, read.engine, read.text, read.reason, {**page.details, **read.details})
        return page

    async def _transcribe(self, claimed: Claimed, path: Path) -> Extracted:
        data = await _read_file(path)
        provider = await self.provider_for(claimed.owner_id)
        if claimed.ai_opt_out and provider.is_remote:  # its files never leave the machine
            probe = await asyncio.to_thread(probe_audio, data)
            details = {} if probe.duration_seconds is None else {"duration_seconds": probe.duration_seconds}
            return Extracted("skipped", AUDIO_ENGINE, reason=KEPT_LOCAL, details=details)
        on_usage = None
        if provider.is_remote and provider.can_transcribe:
            try:
                await self.budgets.ensure_allowed(claimed.owner_id)
            except BudgetExceeded as exc:
                raise ExtractionFailed("today's AI budget is used up") from exc

            async def on_usage(usage: TokenUsage) -> None:
                await self.budgets.record(claimed.owner_id, usage.total)

        return await transcribe_audio(
            data,
            filename=claimed.filename or "audio",
            content_type=claimed.content_type,
            provider=provider,
            language=await self._language(claimed.owner_id),
            max_bytes=self.max_audio_bytes,
            on_usage=on_usage,
        )

    async def _language(self, user_id: str) -> Language:
        async with transaction(self.sessions.read) as session:
            return await user_language(session, user_id)


async def _read_file(path: Path) -> bytes:
    try:
        return await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError as exc:
        raise ExtractionFailed(FILE_GONE) from exc
