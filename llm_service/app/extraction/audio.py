"""Voice memos: their length read from the file's header (mutagen: WAV, MP3, M4A/AAC,
OGG Vorbis/Opus, FLAC…), their text heard by the provider's speech-to-text.

The offline provider has no speech-to-text: its users' memos are `skipped` with a reason
(and still get their duration). What is sent is the audio and a neutral file name
(`voice-memo.<ext>`, the extension telling the provider the format), never the user's
own file name.
"""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import mutagen

from common.api_clients.llm.errors import ProviderError
from common.api_clients.llm.results import TokenUsage
from llm_service.app.extraction.results import Extracted, ExtractionFailed
from llm_service.app.providers.base import Language, Provider

MB = 1024 * 1024
MAX_AUDIO_BYTES = 25 * MB  # OpenAI's and Groq's upload limit
ENGINE = "transcription"
NO_SPEECH_TO_TEXT = "transcription needs a provider with speech-to-text"
EMPTY = "the voice memo is empty"
UPLOAD_STEM = "voice-memo"

# The extensions transcription endpoints recognise (OpenAI and Groq list these).
ACCEPTED_EXTENSIONS = frozenset({"flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav", "webm"})
# Other names for those formats.
_EXTENSION_ALIASES = {"opus": "ogg", "oga": "ogg", "wave": "wav", "aac": "m4a", "3gp": "mp4"}
# What mutagen found, as an extension.
_KIND_EXTENSIONS = {
    "WAVE": "wav",
    "MP3": "mp3",
    "EasyMP3": "mp3",
    "MP4": "m4a",
    "EasyMP4": "m4a",
    "OggOpus": "ogg",
    "OggVorbis": "ogg",
    "OggFLAC": "ogg",
    "OggSpeex": "ogg",
    "FLAC": "flac",
}
_TYPE_EXTENSIONS = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mp4": "m4a",
    "audio/m4a": "m4a",
    "audio/x-m4a": "m4a",
    "audio/aac": "m4a",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/webm": "webm",
    "video/webm": "webm",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
}

UsageCallback = Callable[[TokenUsage], Awaitable[None]]


@dataclass(frozen=True)
class AudioProbe:
    """What the header says: the length in seconds (to 0.1 s) and mutagen's name for the
    format (`WAVE`, `MP3`, `MP4`, `OggOpus`…); None for what it could not read."""

    duration_seconds: float | None = None
    kind: str | None = None


def probe_audio(data: bytes) -> AudioProbe:
    """The length and format of an audio file from its header; nothing when mutagen does not
    know the format. Reads no more than the header and a few frames."""
    try:
        audio = mutagen.File(io.BytesIO(data))
        length = getattr(getattr(audio, "info", None), "length", None)
    except Exception:  # noqa: BLE001 - untrusted bytes: any failure of the parser means "unknown"
        return AudioProbe()
    if audio is None:
        return AudioProbe()
    duration = None
    if isinstance(length, int | float) and not isinstance(length, bool) and math.isfinite(length) and length > 0:
        duration = round(float(length), 1)
    return AudioProbe(duration, type(audio).__name__)


def upload_name(filename: str, content_type: str, kind: str | None = None) -> str:
    """`voice-memo.<ext>`: the format as mutagen found it, else as the file name or the
    content type says (providers tell formats by the extension). Without a known format,
    the file's own extension, or none."""
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower().lstrip(".")
    suffix = _EXTENSION_ALIASES.get(suffix, suffix)
    media_type = content_type.split(";")[0].strip().lower()
    for extension in (
        _KIND_EXTENSIONS.get(kind or ""),
        suffix if suffix in ACCEPTED_EXTENSIONS else None,
        _TYPE_EXTENSIONS.get(media_type),
    ):
        if extension:
            return f"{UPLOAD_STEM}.{extension}"
    return f"{UPLOAD_STEM}.{suffix}" if suffix.isalnum() and len(suffix) <= 5 else UPLOAD_STEM


async def transcribe_audio(
    data: bytes,
    *,
    filename: str,
    content_type: str,
    provider: Provider,
    language: Language,
    max_bytes: int = MAX_AUDIO_BYTES,
    on_usage: UsageCallback | None = None,
) -> Extracted:
    """A voice memo's text through `provider`'s speech-to-text, with its duration (from the
    header, else from the provider) in `details["duration_seconds"]`, skipped or not.

    `skipped` when the provider has no speech-to-text, the memo is empty or larger than
    `max_bytes`; a provider's failure raises `ExtractionFailed` with its error class
    (`timeout`, `server_error`, `rate_limited`…) after the client's own retries. `on_usage`
    is told the tokens a call used (to count them against the owner's budget).
    """
    probe = await asyncio.to_thread(probe_audio, data)
    details: dict[str, Any] = {}
    if probe.duration_seconds is not None:
        details["duration_seconds"] = probe.duration_seconds
    if not provider.can_transcribe:
        return Extracted("skipped", ENGINE, reason=NO_SPEECH_TO_TEXT, details=details)
    if not data:
        return Extracted("skipped", ENGINE, reason=EMPTY, details=details)
    if len(data) > max_bytes:
        reason = f"the voice memo is larger than {max_bytes / MB:g} MB"
        return Extracted("skipped", ENGINE, reason=reason, details=details)
    try:
        heard = await provider.transcribe(
            data,
            filename=upload_name(filename, content_type, probe.kind),
            content_type=content_type or "application/octet-stream",
            language=language,
        )
    except ProviderError as exc:
        raise ExtractionFailed(exc.error_class) from exc
    if on_usage is not None:
        await on_usage(heard.usage)
    if "duration_seconds" not in details and heard.duration_seconds:
        details["duration_seconds"] = round(heard.duration_seconds, 1)
    return Extracted("done", f"{ENGINE}:{heard.model}", text=heard.text.strip(), details=details)
