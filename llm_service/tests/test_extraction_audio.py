"""Voice memos: the duration read from the file's header, the text heard by the provider's
speech-to-text (the fake provider at the HTTP boundary, multipart in, JSON out), and the
skips and failures the extraction worker is given."""

from __future__ import annotations

import hashlib
import io
import wave

import httpx
import pytest

from common.api_clients.llm import CircuitBreaker, OpenAICompatibleClient, ProviderBadResponse
from common.api_clients.llm.results import TokenUsage
from llm_service.app.extraction.audio import (
    MB,
    NO_SPEECH_TO_TEXT,
    AudioProbe,
    probe_audio,
    transcribe_audio,
    upload_name,
)
from llm_service.app.extraction.results import Extracted, ExtractionFailed
from llm_service.app.providers.local import LocalProvider
from llm_service.app.providers.remote import TRANSCRIPTION_PROMPTS, RemoteProvider
from llm_service.tests.fake_provider import FAKE_API_KEY, UPSTREAM_MARKER, FakeProvider, Reply, Upload

WHISPER = "fake-whisper"


def silence_wav(seconds: float, rate: int = 16_000) -> bytes:
    """A mono 16-bit WAV of silence, written by the standard library."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\0\0" * round(seconds * rate))
    return out.getvalue()


def make_client(http: httpx.AsyncClient, fake: FakeProvider, api_key: str = FAKE_API_KEY) -> OpenAICompatibleClient:
    return OpenAICompatibleClient(
        http,
        fake.base_url,
        api_key,
        "fake-model",
        breaker=CircuitBreaker(failure_threshold=50),
        max_retries=2,
        backoff_base=0.01,
        backoff_max=0.02,
        read_timeout=5.0,
        transcription_model=WHISPER,
    )


def make_provider(http: httpx.AsyncClient, fake: FakeProvider, **options: str) -> RemoteProvider:
    client = make_client(http, fake, **options)
    return RemoteProvider(client, name="fake", transcription_model=WHISPER)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the header -----------------------------------------------------------------------


def test_the_duration_comes_from_the_wav_header() -> None:
    assert probe_audio(silence_wav(1.5)) == AudioProbe(1.5, "WAVE")
    assert probe_audio(silence_wav(2.0, rate=8000)).duration_seconds == 2.0


@pytest.mark.parametrize("data", [b"", b"not audio at all " * 64, silence_wav(1.0)[:30], b"RIFF" + b"\xff" * 60])
def test_what_mutagen_cannot_read_has_no_duration(data: bytes) -> None:
    assert probe_audio(data) == AudioProbe()


@pytest.mark.parametrize(
    ("filename", "content_type", "kind", "expected"),
    [
        ("memo.WAV", "", None, "voice-memo.wav"),
        ("recording", "audio/mp4", None, "voice-memo.m4a"),
        ("语音 5月4日.opus", "", None, "voice-memo.ogg"),
        ("voice.bin", "audio/mpeg; charset=binary", None, "voice-memo.mp3"),
        ("voice.bin", "audio/mpeg", "WAVE", "voice-memo.wav"),  # what the bytes are wins
        ("memo.amr", "audio/amr", None, "voice-memo.amr"),
        ("../../etc/passwd", "", None, "voice-memo"),
        ("memo.wav; rm -rf ~", "", None, "voice-memo"),
    ],
)
def test_the_upload_is_named_by_its_format_never_by_the_user(
    filename: str, content_type: str, kind: str | None, expected: str
) -> None:
    assert upload_name(filename, content_type, kind) == expected


# -- skipped --------------------------------------------------------------------------


async def test_the_offline_provider_skips_with_a_reason_and_still_gives_the_duration() -> None:
    provider = LocalProvider()
    result = await transcribe_audio(
        silence_wav(1.5), filename="memo.wav", content_type="audio/wav", provider=provider, language="zh-CN"
    )

    assert provider.can_transcribe is False
    assert result == Extracted("skipped", "transcription", reason=NO_SPEECH_TO_TEXT, details={"duration_seconds": 1.5})


async def test_a_provider_without_speech_to_text_is_not_called(http, shared_fake) -> None:
    provider = RemoteProvider(make_client(http, shared_fake), name="deepseek-like")
    result = await transcribe_audio(
        silence_wav(1.5), filename="memo.wav", content_type="audio/wav", provider=provider, language="en"
    )

    assert provider.can_transcribe is False
    assert (result.status, result.reason) == ("skipped", NO_SPEECH_TO_TEXT)
    assert shared_fake.requests == []


async def test_an_oversized_memo_is_skipped_without_a_call(http, shared_fake) -> None:
    memo = silence_wav(70)  # 16 kHz, 16 bit: 2.24 MB
    result = await transcribe_audio(
        memo,
        filename="memo.wav",
        content_type="audio/wav",
        provider=make_provider(http, shared_fake),
        language="zh-CN",
        max_bytes=2 * MB,
    )

    assert len(memo) > 2 * MB
    assert result == Extracted(
        "skipped", "transcription", reason="the voice memo is larger than 2 MB", details={"duration_seconds": 70.0}
    )
    assert shared_fake.transcription_requests == []


# -- transcribed ----------------------------------------------------------------------


async def test_a_memo_is_transcribed_with_the_language_hint_and_a_neutral_name(http, shared_fake) -> None:
    shared_fake.script_transcriptions(Reply(text="  今天下午三点和小王开会。\n", usage=(40, 9)))
    spent: list[TokenUsage] = []

    async def count(usage: TokenUsage) -> None:
        spent.append(usage)

    memo = silence_wav(1.5)
    result = await transcribe_audio(
        memo,
        filename="语音 5月4日.wav",
        content_type="audio/wav",
        provider=make_provider(http, shared_fake),
        language="zh-CN",
        on_usage=count,
    )

    assert result == Extracted(
        "done", "transcription:fake-whisper", text="今天下午三点和小王开会。", details={"duration_seconds": 1.5}
    )
    assert spent == [TokenUsage(prompt_tokens=40, completion_tokens=9)]
    [request] = shared_fake.transcription_requests
    assert request.headers["authorization"] == f"Bearer {FAKE_API_KEY}"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert request.form == {
        "model": WHISPER,
        "language": "zh",
        "response_format": "json",
        "prompt": TRANSCRIPTION_PROMPTS["zh-CN"],
    }
    assert request.upload == Upload("voice-memo.wav", "audio/wav", len(memo), sha256(memo))


async def test_an_english_memo_is_hinted_en_without_a_prompt(http, shared_fake) -> None:
    shared_fake.script_transcriptions(Reply(text="Call the dentist on Monday."))
    result = await transcribe_audio(
        silence_wav(0.5),
        filename="memo",
        content_type="audio/x-wav",
        provider=make_provider(http, shared_fake),
        language="en",
    )

    assert (result.status, result.text) == ("done", "Call the dentist on Monday.")
    [request] = shared_fake.transcription_requests
    assert request.form == {"model": WHISPER, "language": "en", "response_format": "json"}
    assert request.upload is not None and request.upload.filename == "voice-memo.wav"


async def test_silence_answered_with_the_prompt_itself_is_no_text(http, shared_fake) -> None:
    shared_fake.script_transcriptions(Reply(text=f" {TRANSCRIPTION_PROMPTS['zh-CN']}"))
    result = await transcribe_audio(
        silence_wav(1.0),
        filename="memo.wav",
        content_type="audio/wav",
        provider=make_provider(http, shared_fake),
        language="zh-CN",
    )

    assert (result.status, result.text) == ("done", "")


async def test_the_providers_duration_is_kept_when_the_header_says_nothing(http, shared_fake) -> None:
    shared_fake.script_transcriptions(Reply.raw_json({"text": "好的", "duration": 4.04}))
    memo = b"#!AMR\n" + bytes(range(256)) * 8
    result = await transcribe_audio(
        memo,
        filename="memo.amr",
        content_type="audio/amr",
        provider=make_provider(http, shared_fake),
        language="zh-CN",
    )

    assert result.details == {"duration_seconds": 4.0}
    [request] = shared_fake.transcription_requests
    assert request.upload == Upload("voice-memo.amr", "audio/amr", len(memo), sha256(memo))


# -- failures -------------------------------------------------------------------------


async def test_a_failing_provider_is_retried_then_fails_the_extraction(http, shared_fake) -> None:
    shared_fake.script_transcriptions(Reply.error(500), Reply.error(502), Reply.error(503))
    spent: list[TokenUsage] = []

    async def count(usage: TokenUsage) -> None:
        spent.append(usage)

    with pytest.raises(ExtractionFailed) as failed:
        await transcribe_audio(
            silence_wav(1.0),
            filename="memo.wav",
            content_type="audio/wav",
            provider=make_provider(http, shared_fake),
            language="zh-CN",
            on_usage=count,
        )

    assert failed.value.reason == "server_error"
    assert UPSTREAM_MARKER not in str(failed.value)
    assert len(shared_fake.transcription_requests) == 3  # the first try and max_retries=2
    assert spent == []


async def test_a_refused_key_fails_at_once(http, shared_fake) -> None:
    with pytest.raises(ExtractionFailed) as failed:
        await transcribe_audio(
            silence_wav(1.0),
            filename="memo.wav",
            content_type="audio/wav",
            provider=make_provider(http, shared_fake, api_key="sk-wrong"),
            language="en",
        )

    assert failed.value.reason == "unauthorized"
    assert len(shared_fake.transcription_requests) == 1


async def test_the_client_reads_usage_duration_and_refuses_answers_without_text(http, shared_fake) -> None:
    shared_fake.script_transcriptions(
        Reply(text="hi", usage=(5, 2)),
        Reply.raw_json({"text": "hello", "usage": {"type": "duration", "seconds": 3}}),
        Reply.raw_json({"error": {"message": UPSTREAM_MARKER}}),
        Reply.html(),
    )
    client = make_client(http, shared_fake)
    memo = silence_wav(0.2)

    tokens = await client.transcribe(memo, filename="a.wav", content_type="audio/wav")
    seconds = await client.transcribe(memo, filename="a.wav", content_type="audio/wav", model="other-model")
    assert (tokens.text, tokens.usage, tokens.duration_seconds) == ("hi", TokenUsage(5, 2), None)
    assert (seconds.text, seconds.usage, seconds.duration_seconds) == ("hello", TokenUsage(), 3.0)
    for _ in range(2):
        with pytest.raises(ProviderBadResponse) as bad:
            await client.transcribe(memo, filename="a.wav", content_type="audio/wav")
        assert UPSTREAM_MARKER not in str(bad.value)

    first, second, *_ = shared_fake.transcription_requests
    assert first.form == {"model": WHISPER, "response_format": "json"}  # no language hint given
    assert second.form["model"] == "other-model"
