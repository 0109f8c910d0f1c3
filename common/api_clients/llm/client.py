"""The one client for OpenAI-compatible providers: chat completions (whole or streamed),
embeddings and audio transcriptions, on a shared `httpx.AsyncClient`.

Every call goes through the provider's circuit breaker, retries 429, 5xx and connection
failures with back-off (the provider's `Retry-After` wins), caps what it reads, and turns
every failure into a `ProviderError` whose message Jilu wrote: never the provider's body,
never the API key. A stream is never retried once the provider has answered.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr

from common.api_clients.http import create_http_client
from common.api_clients.llm.breaker import CircuitBreaker, breakers
from common.api_clients.llm.errors import (
    CircuitOpen,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimited,
    ProviderRefusedAddress,
    ProviderServerError,
    ProviderTimeout,
    ProviderTooLarge,
    ProviderUnauthorized,
)
from common.api_clients.llm.results import ChatCompletion, ChatMessage, StreamDelta, TokenUsage, Transcript
from common.api_clients.llm.retry import RetryPolicy, parse_retry_after
from common.api_clients.llm.sse import parse_chat_stream
from common.api_clients.llm.ssrf import GuardedTransport, ensure_allowed, normalise_allowed_hosts
from common.metrics import provider_call, provider_tokens

logger = logging.getLogger(__name__)

T = TypeVar("T")

# An embeddings endpoint that is not there: the provider has none (not an error).
MISSING_ENDPOINT = frozenset({404, 405, 501})
# 501 and 505 will not get better by asking again.
PERMANENT_SERVER_ERRORS = frozenset({501, 505})
# The `operation` label of each endpoint's calls in the provider metrics (`common.metrics`).
_OPERATIONS = {"chat/completions": "chat", "embeddings": "embeddings", "audio/transcriptions": "transcription"}
# After a stream's `[DONE]`: how long and how much more is read to keep the connection.
END_OF_BODY_SECONDS = 0.5
END_OF_BODY_BYTES = 64 * 1024


def create_llm_http_client(
    allowed_hosts: Sequence[str] = (), *, timeout: float = 60.0, connect_timeout: float = 5.0
) -> httpx.AsyncClient:
    """The shared client for calling providers: never follows redirects, and its transport
    refuses non-public addresses at connect time (DNS rebinding cannot slip past the check).
    Make one in the lifespan and close it there."""
    return create_http_client(timeout, connect_timeout=connect_timeout, transport=GuardedTransport(allowed_hosts))


class _BreakerCall:
    """One call as the breaker sees it: a failure of the provider, a sign of life, or
    nothing learnt (cancelled before an answer, refused before sending)."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self.trial = breaker.acquire()
        self.answered = False

    def __enter__(self) -> _BreakerCall:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.breaker.record_success(self.trial)
        elif isinstance(exc, ProviderError):
            if exc.counts_against_breaker:
                self.breaker.record_failure(self.trial)
            elif isinstance(exc, CircuitOpen | ProviderRefusedAddress):
                self.breaker.release(self.trial)
            else:  # unauthorized, bad request: the provider is up and answering
                self.breaker.record_success(self.trial)
        elif self.answered:
            self.breaker.record_success(self.trial)
        else:
            self.breaker.release(self.trial)


class OpenAICompatibleClient:
    """A provider at `base_url` (ending in `/v1` or wherever `chat/completions` lives).

    `allowed_hosts`, when given, re-checks the provider's addresses before every request
    (use it unless `http` was made by `create_llm_http_client`, which checks at connect time).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: str | SecretStr | None,
        model: str,
        *,
        breaker: CircuitBreaker | None = None,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        retry_after_cap: float = 30.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        total_timeout: float = 180.0,
        embedding_model: str | None = None,
        transcription_model: str | None = None,
        allowed_hosts: Sequence[str] | None = None,
        max_body_bytes: int = 2_000_000,
        max_stream_chars: int = 200_000,
    ) -> None:
        self.base_url = base_url.strip().rstrip("/")
        self.model = model
        self.embedding_model = embedding_model
        self.transcription_model = transcription_model
        self._http = http
        self._api_key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._breaker = breaker or breakers.for_url(self.base_url)
        self._retry = RetryPolicy(max_retries, backoff_base, backoff_max, retry_after_cap)
        self._timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=read_timeout)
        self._total_timeout = total_timeout
        self._allowed = None if allowed_hosts is None else normalise_allowed_hosts(allowed_hosts)
        self._max_body_bytes = max_body_bytes
        self._max_stream_chars = max_stream_chars
        try:
            self._host = httpx.URL(self.base_url).host or "?"
        except httpx.InvalidURL:
            self._host = "?"

    def __repr__(self) -> str:
        return f"OpenAICompatibleClient(base_url={self.base_url!r}, model={self.model!r})"

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    # -- public calls ------------------------------------------------------------------

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        json_mode: bool = False,
        model: str | None = None,
    ) -> ChatCompletion:
        """A whole answer. `json_mode` asks for `response_format: json_object` (only for
        providers that support it; the prompt must mention JSON). `model` replaces the
        client's for this call (a vision model, say)."""
        payload = self._chat_payload(messages, temperature, max_tokens)
        if model:
            payload["model"] = model
        if json_mode:
            payload["response_format"] = {"type": "json_object"}
        result = await self._post_json("chat/completions", payload, completion_from_wire)
        assert result is not None
        provider_tokens("chat", result.usage)
        return result

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        include_usage: bool = True,
    ) -> AsyncGenerator[StreamDelta, None]:
        """Text deltas as the provider sends them, then one `done` delta with the usage.

        Close the iterator when you stop early (`contextlib.aclosing`): that closes the
        upstream connection, which cancels the provider's work.
        """
        payload = self._chat_payload(messages, temperature, max_tokens)
        payload["stream"] = True
        if include_usage:
            payload["stream_options"] = {"include_usage": True}
        url = self._url("chat/completions")
        with provider_call("chat_stream"), _BreakerCall(self._breaker) as call:
            response = await self._retrying(lambda: self._open(url, payload, accept="text/event-stream"))
            call.answered = True
            try:
                async for delta in self._read_stream(response):
                    if delta.done:
                        provider_tokens("chat_stream", delta.usage)
                    yield delta
            finally:
                await response.aclose()

    async def embed(self, texts: Sequence[str], *, model: str | None = None) -> list[list[float]] | None:
        """One vector per text, in order; None when the provider has no embeddings endpoint."""
        if not texts:
            return []
        payload = {"model": model or self.embedding_model or self.model, "input": list(texts)}
        return await self._post_json("embeddings", payload, lambda data: embeddings_from_wire(data, len(texts)), True)

    async def transcribe(
        self,
        audio: bytes,
        *,
        filename: str,
        content_type: str,
        model: str | None = None,
        language: str | None = None,
        prompt: str | None = None,
    ) -> Transcript:
        """Speech to text through `POST /audio/transcriptions` (multipart, `response_format:
        json`), retried like every call. `filename`'s extension tells most providers the
        format; `language` is an ISO-639-1 hint ("zh", "en"); `prompt` is text the speech
        is taken to follow (it steers spelling and script, not what is transcribed)."""
        form = {"model": model or self.transcription_model or self.model, "response_format": "json"}
        if language:
            form["language"] = language
        if prompt:
            form["prompt"] = prompt
        files = {"file": (filename, audio, content_type)}
        result = await self._post_json("audio/transcriptions", form, transcript_from_wire, files=files)
        assert result is not None
        provider_tokens("transcription", result.usage)
        return result

    # -- the machinery -----------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{path}"

    def _chat_payload(
        self, messages: Sequence[ChatMessage], temperature: float | None, max_tokens: int | None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": _wire_content(m["content"])} for m in messages],
        }
        if temperature is not None:
            payload["temperature"] = temperature
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        return payload

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def _post_json(
        self,
        path: str,
        payload: dict[str, Any],
        parse: Callable[[Any], T],
        missing_ok: bool = False,
        *,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> T | None:
        url = self._url(path)
        with provider_call(_OPERATIONS.get(path, path)), _BreakerCall(self._breaker):
            data = await self._retrying(lambda: self._json_attempt(url, payload, missing_ok, files))
            return None if data is _MISSING else parse(data)

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        retry = 0
        while True:
            try:
                return await attempt()
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                delay = self._retry.delay(retry, exc.retry_after)
                if delay is None:
                    raise
                logger.warning(
                    "LLM provider %s: %s, retry %d in %.2f s",
                    self._host,
                    exc.error_class,
                    retry + 1,
                    delay,
                    extra={
                        "llm_host": self._host,
                        "error_class": exc.error_class,
                        "upstream_status": exc.upstream_status,
                    },
                )
                await asyncio.sleep(delay)
                retry += 1

    async def _open(
        self,
        url: str,
        payload: dict[str, Any],
        *,
        accept: str,
        missing_ok: bool = False,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> httpx.Response:
        """Send the request (JSON, or a multipart form when there are `files`) and return the
        response once its status is acceptable (the body still unread); every failure
        becomes a `ProviderError`."""
        if self._allowed is not None:
            await ensure_allowed(url, self._allowed)
        body: dict[str, Any] = {"json": payload} if files is None else {"data": payload, "files": files}
        request = self._http.build_request("POST", url, headers=self._headers(accept), timeout=self._timeout, **body)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.ConnectTimeout:
            raise ProviderTimeout("The LLM provider did not accept the connection in time", retryable=True) from None
        except httpx.TimeoutException:
            raise ProviderTimeout() from None
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise ProviderConnectionError(retryable=True) from exc
        except httpx.HTTPError as exc:
            raise ProviderConnectionError() from exc
        if missing_ok and response.status_code in MISSING_ENDPOINT:
            return response
        try:
            check_status(response)
        except BaseException:
            await response.aclose()
            raise
        return response

    async def _json_attempt(
        self,
        url: str,
        payload: dict[str, Any],
        missing_ok: bool,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> Any:
        try:
            async with asyncio.timeout(self._total_timeout):
                response = await self._open(url, payload, accept="application/json", missing_ok=missing_ok, files=files)
                try:
                    if missing_ok and response.status_code in MISSING_ENDPOINT:
                        return _MISSING
                    body = await self._read_capped(response)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise ProviderTimeout() from None
        return decode_json_body(response, body)

    async def _read_capped(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_body_bytes:
            raise ProviderTooLarge()
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self._max_body_bytes:
                    raise ProviderTooLarge()
        except httpx.TimeoutException:
            raise ProviderTimeout() from None
        except httpx.HTTPError as exc:
            raise ProviderConnectionError("The LLM provider's answer broke off", retryable=True) from exc
        return bytes(body)

    async def _read_stream(self, response: httpx.Response) -> AsyncGenerator[StreamDelta, None]:
        content_type = response.headers.get("content-type", "").lower()
        try:
            if "json" in content_type:
                # The provider ignored `stream: true` and sent the whole answer at once.
                completion = completion_from_wire(decode_json_body(response, await self._read_capped(response)))
                if completion.text:
                    yield StreamDelta(text=completion.text)
                yield StreamDelta(done=True, usage=completion.usage, finish_reason=completion.finish_reason)
                return
            if "html" in content_type:
                raise ProviderBadResponse(HTML_ANSWER)
            body = response.aiter_bytes()
            async for delta in parse_chat_stream(body, max_chars=self._max_stream_chars):
                yield delta
            await _read_to_end(body)
        except httpx.TimeoutException:
            raise ProviderTimeout("The LLM provider stopped sending its answer") from None
        except httpx.HTTPError as exc:
            raise ProviderConnectionError("The LLM provider's stream broke off") from exc


async def _read_to_end(body: AsyncIterator[bytes]) -> None:
    """Read what follows `[DONE]` (normally just the end of the chunked body), so that the
    connection goes back to the pool instead of being closed: the next answer then skips the
    TCP and TLS handshakes. A provider that sends more, or is slow to end, is left to the
    close that follows."""
    received = 0
    try:
        async with asyncio.timeout(END_OF_BODY_SECONDS):
            async for chunk in body:
                received += len(chunk)
                if received > END_OF_BODY_BYTES:
                    return
    except (TimeoutError, httpx.HTTPError):
        return


_MISSING: Any = object()

HTML_ANSWER = "The LLM provider answered with an HTML page instead of JSON (is the base URL right?)"


def check_status(response: httpx.Response) -> None:
    """Raise the `ProviderError` a non-2xx status means (the body is not read)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if 300 <= status < 400:
        raise ProviderBadResponse(
            "The LLM provider answered with a redirect, which is not followed", upstream_status=status
        )
    if status in (401, 403):
        raise ProviderUnauthorized(upstream_status=status)
    if status == 429:
        raise ProviderRateLimited(retryable=True, retry_after=retry_after, upstream_status=status)
    if status >= 500 or status == 408:
        raise ProviderServerError(
            f"The LLM provider answered {status}",
            retryable=status not in PERMANENT_SERVER_ERRORS,
            retry_after=retry_after,
            upstream_status=status,
        )
    if 400 <= status < 500:
        raise ProviderBadRequest(f"The LLM provider rejected the request ({status})", upstream_status=status)
    raise ProviderBadResponse(f"The LLM provider answered an unexpected status {status}", upstream_status=status)


def decode_json_body(response: httpx.Response, body: bytes) -> Any:
    if "html" in response.headers.get("content-type", "").lower() or body.lstrip()[:1] == b"<":
        raise ProviderBadResponse(HTML_ANSWER)
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise ProviderBadResponse("The LLM provider answered with malformed JSON") from None


def _wire_content(content: str | Sequence[Mapping[str, Any]]) -> str | list[dict[str, Any]]:
    """A message's content as JSON can carry it: the string, or the parts as plain dicts."""
    return content if isinstance(content, str) else [dict(part) for part in content]


def _message_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        parts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "".join(parts) if parts else None
    return None


def completion_from_wire(data: Any) -> ChatCompletion:
    """`choices[0].message.content` and the usage of a chat completion, or `bad_response`."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        if isinstance(data, dict) and data.get("error"):
            raise ProviderBadResponse("The LLM provider answered with an error instead of a completion")
        raise ProviderBadResponse("The LLM provider's answer had no choices")
    choice = choices[0]
    message = choice.get("message")
    finish_reason = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
    text = _message_text(message.get("content")) if isinstance(message, dict) else None
    if text is None:
        if finish_reason == "content_filter":
            raise ProviderBadResponse("The LLM provider withheld its answer (content filter)")
        raise ProviderBadResponse("The LLM provider's answer had no message text")
    return ChatCompletion(
        text=text, usage=TokenUsage.from_wire(data.get("usage")) or TokenUsage(), finish_reason=finish_reason
    )


def embeddings_from_wire(data: Any, expected: int) -> list[list[float]]:
    """The vectors of an embeddings answer in input order, or `bad_response`."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != expected:
        raise ProviderBadResponse("The LLM provider's embeddings answer did not match the input")
    vectors: list[tuple[int, list[float]]] = []
    for position, item in enumerate(items):
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not isinstance(vector, list) or not vector:
            raise ProviderBadResponse("The LLM provider's embeddings answer had no vectors")
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in vector):
            raise ProviderBadResponse("The LLM provider's embeddings answer had non-numeric vectors")
        index = item.get("index", position)
        vectors.append((index if isinstance(index, int) else position, [float(x) for x in vector]))
    vectors.sort(key=lambda pair: pair[0])
    return [vector for _, vector in vectors]


def _non_negative_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value < float("inf") else None


def transcript_from_wire(data: Any) -> Transcript:
    """The `text` of a transcription, its usage and the audio's duration when the provider
    said (`duration`, or OpenAI's `usage: {"type": "duration", "seconds": ...}`), or
    `bad_response`. Token usage may be named `input_tokens`/`output_tokens` (OpenAI's
    transcription models) or `prompt_tokens`/`completion_tokens`."""
    text = data.get("text") if isinstance(data, dict) else None
    if not isinstance(text, str):
        if isinstance(data, dict) and data.get("error"):
            raise ProviderBadResponse("The LLM provider answered with an error instead of a transcription")
        raise ProviderBadResponse("The LLM provider's transcription had no text")
    usage, duration = TokenUsage(), _non_negative_number(data.get("duration"))
    reported = data.get("usage")
    if isinstance(reported, dict):
        if reported.get("type") == "duration":
            duration = duration if duration is not None else _non_negative_number(reported.get("seconds"))
        else:
            tokens = {
                "prompt_tokens": reported.get("input_tokens", reported.get("prompt_tokens")),
                "completion_tokens": reported.get("output_tokens", reported.get("completion_tokens")),
            }
            usage = TokenUsage.from_wire(tokens) or usage
    return Transcript(text=text, usage=usage, duration_seconds=duration)
