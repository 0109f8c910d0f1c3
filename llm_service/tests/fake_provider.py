"""A fake OpenAI-compatible provider: a real HTTP server on loopback (uvicorn in a thread)
speaking the real wire format, the only fake in Jilu's tests.

    async with serve_fake_provider() as fake:
        fake.script(Reply.rate_limited(retry_after="1"), Reply(text="hello"))
        client = OpenAICompatibleClient(http, fake.base_url, "sk-test", "fake-model", ...)
        ...
        assert len(fake.chat_requests) == 2

Each request to `/v1/chat/completions` takes the next scripted `Reply` (or `default_reply`
when none is left); `/v1/embeddings` and `/v1/audio/transcriptions` have scripts of their own.
`stream: true` is answered with SSE chunks (`data: {...}`, a finish chunk, a usage chunk when
`stream_options.include_usage`, `data: [DONE]`); a stream can also hang (`first_token_delay`,
`hang_after`), break off, or be raw bytes (`raw_events`: malformed SSE, truncated JSON).
A transcription takes a multipart form (`file`, `model`, `language`, `response_format`…) and
answers `{"text": ..., "usage": ...}`.
Every request received is recorded (for a form: its fields and the uploaded file's name, type,
size and hash), so a test can assert what a provider saw.
Error bodies contain `UPSTREAM_MARKER`: it must never show up in Jilu's messages or logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile

from tests.support import serve_app, wait_until

UPSTREAM_MARKER = "FAKE-UPSTREAM-BODY-7f3a"
FAKE_MODEL = "fake-model"
# The key the package's shared fake provider accepts (`shared_fake`, llm_service/tests/conftest.py).
FAKE_API_KEY = "sk-test-0123456789abcdef-SECRET"
# How long a hanging stream stays silent: far past any timeout a test sets, and ended early
# when the client goes away or the test is over.
HANG_SECONDS = 120.0


@dataclass
class Reply:
    """One scripted answer. By default a 200 completion of `text` (streamed when asked)."""

    text: str = "Hello from the fake provider."
    status: int = 200
    delay: float = 0.0  # before the response starts
    first_token_delay: float = 0.0  # stream: after the headers, before the first text chunk
    chunk_delay: float = 0.0  # stream: between text chunks
    chunks: list[str] | None = None  # stream: the text pieces (default: `text` word by word)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | str | None = None  # a raw body instead of a completion
    content_type: str = "application/json"
    size: int | None = None  # a completion this many bytes long
    declare_length: bool = True  # with `size`: send Content-Length (else chunked)
    usage: tuple[int, int] = (11, 7)
    finish_reason: str | None = "stop"
    error_after: int | None = None  # stream: an error chunk after this many text chunks
    drop_after: int | None = None  # stream: break the connection after this many text chunks
    hang_after: int | None = None  # stream: go silent after this many text chunks, until the client leaves
    raw_events: list[bytes] | None = None  # stream: these bytes as they are (`chunk_delay` apart), nothing else
    send_done: bool = True  # stream: send `data: [DONE]`
    after_done: bytes = b""  # stream: more of the body after `[DONE]`, sent `after_done_delay` later
    after_done_delay: float = 0.0

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1") -> Reply:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls(status=429, headers=headers)

    @classmethod
    def error(cls, status: int = 500, **kwargs: Any) -> Reply:
        return cls(status=status, **kwargs)

    @classmethod
    def html(cls, status: int = 200) -> Reply:
        page = f"<!doctype html><html><body><h1>Welcome</h1><p>{UPSTREAM_MARKER}</p></body></html>"
        return cls(status=status, body=page, content_type="text/html; charset=utf-8")

    @classmethod
    def malformed(cls) -> Reply:
        return cls(
            body='{"choices": [{"message": {"content": "' + UPSTREAM_MARKER + '"', content_type="application/json"
        )

    @classmethod
    def raw_json(cls, value: Any) -> Reply:
        return cls(body=json.dumps(value))

    @classmethod
    def too_large(cls, size: int = 5_000_000, *, declare_length: bool = True) -> Reply:
        return cls(size=size, declare_length=declare_length)

    @classmethod
    def redirect(cls, location: str, status: int = 307) -> Reply:
        return cls(status=status, headers={"Location": location}, body=b"")


@dataclass(frozen=True)
class Upload:
    """A file received in a multipart form."""

    filename: str | None
    content_type: str | None
    size: int
    sha256: str


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    at: float
    client: tuple[str, int] | None = None  # the caller's address and port: one per connection
    form: dict[str, str] = field(default_factory=dict)  # a multipart form's text fields
    upload: Upload | None = None  # a multipart form's `file`


def _words(text: str) -> list[str]:
    pieces = text.split(" ")
    return [piece + (" " if i < len(pieces) - 1 else "") for i, piece in enumerate(pieces) if piece or i == 0]


def _vector(text: str, dim: int = 8) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(digest[i] / 255, 4) for i in range(dim)]


def _sse(obj: Any) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


class FakeProvider:
    """The server's state: scripts, what it received, and how its streams ended."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key  # when set, any other key gets 401
        self.default_reply = Reply()
        self.default_embeddings = Reply()
        self.default_transcription = Reply(text="Transcribed by the fake provider.")
        self.url = ""
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._chat: deque[Reply] = deque()
        self._embeddings: deque[Reply] = deque()
        self._transcriptions: deque[Reply] = deque()
        self._requests: list[ReceivedRequest] = []
        # Streams whose body began; each then ends completed or cancelled. A stream whose client
        # left before its body began (a slow machine) never begins, so is counted in neither.
        self.streams_started = 0
        self.streams_completed = 0
        self.streams_cancelled = 0
        self._generation = 0
        self.app = self._build_app()

    def reset(self, api_key: str | None = None) -> None:
        """Forget scripts, requests and counters (a server shared by several tests); streams
        still running from before are not counted any more."""
        with self._lock:
            self.api_key = api_key
            self.default_reply = Reply()
            self.default_embeddings = Reply()
            self.default_transcription = Reply(text="Transcribed by the fake provider.")
            self._chat.clear()
            self._embeddings.clear()
            self._transcriptions.clear()
            self._requests.clear()
            self.streams_started = self.streams_completed = self.streams_cancelled = 0
            self._generation += 1

    # -- for tests ---------------------------------------------------------------------

    @property
    def streams_open(self) -> int:
        """Streams begun and not ended: a client that stopped reading has left its
        connection open."""
        with self._lock:
            return self.streams_started - self.streams_completed - self.streams_cancelled

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def host_port(self) -> str:
        return self.url.removeprefix("http://")

    def launch_settings(self) -> dict[str, str]:
        """The settings that point a launched Jilu at this provider (as its one custom
        provider, allowed although it is on loopback)."""
        return {
            "JILU_LLM_PROVIDER": "custom",
            "JILU_LLM_BASE_URL": self.base_url,
            "JILU_LLM_MODEL": FAKE_MODEL,
            "JILU_LLM_API_KEY": "sk-e2e-fake",
            "JILU_LLM_ALLOWED_HOSTS": self.host_port,
        }

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._chat.extend(replies)

    def script_embeddings(self, *replies: Reply) -> None:
        with self._lock:
            self._embeddings.extend(replies)

    def script_transcriptions(self, *replies: Reply) -> None:
        """Answers for `/v1/audio/transcriptions`: a 200 reply's `text` is what was heard,
        its `usage` the input and output tokens."""
        with self._lock:
            self._transcriptions.extend(replies)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def embedding_requests(self) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.path.endswith("/embeddings")]

    @property
    def transcription_requests(self) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.path.endswith("/audio/transcriptions")]

    def received_text(self) -> str:
        """Every message content (text parts included) and embedding input the provider was
        sent, one per line."""
        texts: list[str] = []
        for request in self.requests:
            body = request.json if isinstance(request.json, dict) else {}
            for message in body.get("messages") or []:
                content = message.get("content") if isinstance(message, dict) else None
                if isinstance(content, str):
                    texts.append(content)
                elif isinstance(content, list):
                    texts.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
            inputs = body.get("input")
            texts.extend(inputs if isinstance(inputs, list) else [inputs] if isinstance(inputs, str) else [])
        return "\n".join(texts)

    # -- the server --------------------------------------------------------------------

    def _next(self, queue: deque[Reply], default: Reply) -> Reply:
        with self._lock:
            return queue.popleft() if queue else default

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        self._append(request, payload)
        return payload

    def _append(
        self, request: Request, payload: Any, form: dict[str, str] | None = None, upload: Upload | None = None
    ) -> None:
        with self._lock:
            self._requests.append(
                ReceivedRequest(
                    request.method,
                    request.url.path,
                    dict(request.headers),
                    payload,
                    time.monotonic(),
                    (request.client.host, request.client.port) if request.client else None,
                    form or {},
                    upload,
                )
            )

    async def _record_form(self, request: Request) -> tuple[dict[str, str], Upload | None]:
        """Record a multipart request: its text fields and its `file` (a body that is not a
        form is recorded with neither)."""
        fields: dict[str, str] = {}
        upload: Upload | None = None
        try:
            async with request.form() as form:
                for key, value in form.multi_items():
                    if isinstance(value, str):
                        fields[key] = value
                    elif isinstance(value, UploadFile) and key == "file":
                        content = await value.read()
                        digest = hashlib.sha256(content).hexdigest()
                        upload = Upload(value.filename, value.content_type, len(content), digest)
        except Exception:  # noqa: BLE001 - a malformed form is recorded as such, and refused below
            pass
        self._append(request, None, fields, upload)
        return fields, upload

    async def _sleep(self, seconds: float, request: Request | None = None) -> None:
        """Sleep, but stop early when the test is over or the client went away."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0 and not self.stop.is_set():
            await asyncio.sleep(min(0.05, remaining))
            if request is not None and await request.is_disconnected():
                return

    def _unauthorized(self, request: Request) -> Response | None:
        if self.api_key is None or request.headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        # Like real providers, the error body echoes part of what it was sent.
        sent = request.headers.get("authorization", "")
        body = {
            "error": {
                "message": f"Incorrect API key provided: {sent} {UPSTREAM_MARKER}",
                "type": "invalid_request_error",
            }
        }
        return JSONResponse(body, status_code=401)

    def _raw(self, reply: Reply) -> Response:
        if reply.size is not None:
            head = b'{"choices":[{"index":0,"message":{"role":"assistant","content":"'
            tail = b'"},"finish_reason":"stop"}]}'
            filler = max(0, reply.size - len(head) - len(tail))
            if reply.declare_length:
                return Response(head + b"a" * filler + tail, media_type="application/json", headers=reply.headers)

            async def chunked() -> AsyncIterator[bytes]:
                yield head
                for start in range(0, filler, 65536):
                    yield b"a" * min(65536, filler - start)
                yield tail

            return StreamingResponse(chunked(), media_type="application/json", headers=reply.headers)
        body = reply.body
        if body is None:  # an error status without a body of its own
            body = json.dumps({"error": {"message": f"upstream trouble {UPSTREAM_MARKER}", "code": reply.status}})
        return Response(body, status_code=reply.status, media_type=reply.content_type, headers=reply.headers)

    def _completion(self, reply: Reply, payload: dict[str, Any]) -> dict[str, Any]:
        prompt, completion = reply.usage
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": payload.get("model", FAKE_MODEL),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }

    async def _stream(self, reply: Reply, payload: dict[str, Any], request: Request) -> AsyncIterator[bytes]:
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time())}
        base["model"] = payload.get("model", FAKE_MODEL)
        options = payload.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        pieces = reply.chunks if reply.chunks is not None else _words(reply.text)
        completed = False
        with self._lock:
            generation = self._generation
            self.streams_started += 1
        try:
            if reply.raw_events is not None:  # malformed SSE, truncated JSON: exactly what was scripted
                for number, raw in enumerate(reply.raw_events):
                    if number and reply.chunk_delay:
                        await self._sleep(reply.chunk_delay)
                    yield raw
                if reply.hang_after is not None:  # then silent, until the client leaves: cut short
                    await self._sleep(HANG_SECONDS, request)
                    return
                completed = True
                return
            first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            yield _sse({**base, "choices": [first]})
            await self._sleep(reply.first_token_delay, request)
            for number, piece in enumerate(pieces):
                if number == reply.error_after:
                    yield _sse({"error": {"message": f"overloaded {UPSTREAM_MARKER}", "type": "server_error"}})
                    completed = True
                    return
                if number == reply.drop_after:
                    raise ConnectionAbortedError("the fake provider drops the connection")
                if number == reply.hang_after:
                    await self._sleep(HANG_SECONDS, request)  # ended early by the client leaving
                    return
                if number and reply.chunk_delay:
                    await self._sleep(reply.chunk_delay)
                yield _sse({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}]})
            if include_usage:
                prompt, completion = reply.usage
                usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
                yield _sse({**base, "choices": [], "usage": usage})
            if reply.send_done:
                yield b"data: [DONE]\n\n"
            if reply.after_done or reply.after_done_delay:
                await self._sleep(reply.after_done_delay)
                yield reply.after_done
            completed = True
        finally:
            with self._lock:
                if generation != self._generation:
                    pass
                elif completed:
                    self.streams_completed += 1
                else:
                    self.streams_cancelled += 1

    async def _answer_first(self, request: Request, reply: Reply) -> Response | None:
        """What a scripted reply answers before an endpoint's own answer: a refused key, then
        its delay, then a raw or error reply; None to go on."""
        refused = self._unauthorized(request)
        if refused is not None:
            return refused
        await self._sleep(reply.delay, request)
        if reply.status != 200 or reply.body is not None or reply.size is not None:
            return self._raw(reply)
        return None

    def _build_app(self) -> FastAPI:
        app = FastAPI(openapi_url=None)

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            payload = await self._record(request)
            reply = self._next(self._chat, self.default_reply)
            if (early := await self._answer_first(request, reply)) is not None:
                return early
            if not isinstance(payload, dict):
                return JSONResponse({"error": {"message": "not JSON"}}, status_code=400)
            if payload.get("stream") is True:
                return StreamingResponse(
                    self._stream(reply, payload, request), media_type="text/event-stream", headers=reply.headers
                )
            return JSONResponse(self._completion(reply, payload), headers=reply.headers)

        @app.post("/v1/embeddings")
        async def embeddings(request: Request) -> Response:
            payload = await self._record(request)
            reply = self._next(self._embeddings, self.default_embeddings)
            if (early := await self._answer_first(request, reply)) is not None:
                return early
            inputs = payload.get("input") if isinstance(payload, dict) else None
            inputs = [inputs] if isinstance(inputs, str) else inputs or []
            data = [
                {"object": "embedding", "index": i, "embedding": _vector(str(text))} for i, text in enumerate(inputs)
            ]
            data.reverse()  # the index, not the order, says which input a vector belongs to
            usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
            model = payload.get("model") if isinstance(payload, dict) else None
            return JSONResponse({"object": "list", "data": data, "model": model, "usage": usage})

        @app.post("/v1/audio/transcriptions")
        async def transcriptions(request: Request) -> Response:
            fields, upload = await self._record_form(request)
            reply = self._next(self._transcriptions, self.default_transcription)
            if (early := await self._answer_first(request, reply)) is not None:
                return early
            if upload is None or not fields.get("model"):
                error = {"message": "a file and a model are required", "type": "invalid_request_error"}
                return JSONResponse({"error": error}, status_code=400)
            if fields.get("response_format") == "text":
                return PlainTextResponse(reply.text, headers=reply.headers)
            prompt, completion = reply.usage
            usage = {
                "type": "tokens",
                "input_tokens": prompt,
                "output_tokens": completion,
                "total_tokens": prompt + completion,
            }
            return JSONResponse({"text": reply.text, "usage": usage}, headers=reply.headers)

        return app


@contextmanager
def run_fake_provider(api_key: str | None = None) -> Iterator[FakeProvider]:
    """The same server, started without an event loop: for module- or session-scoped
    fixtures (call `reset()` between tests)."""
    fake = FakeProvider(api_key=api_key)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(fake.app, log_config=None, access_log=False, timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"fake-llm-{port}", daemon=True)
    thread.start()
    try:
        if not wait_until(lambda: server.started or not thread.is_alive()) or not server.started:
            raise RuntimeError(f"the fake provider on port {port} did not start")
        fake.url = f"http://127.0.0.1:{port}"
        yield fake
    finally:
        fake.stop.set()
        server.should_exit = True
        thread.join()
        sock.close()


@asynccontextmanager
async def serve_fake_provider(api_key: str | None = None) -> AsyncIterator[FakeProvider]:
    """Start a fake provider on a free loopback port; `fake.base_url` is its `/v1` URL."""
    fake = FakeProvider(api_key=api_key)
    async with serve_app(fake.app) as url:
        fake.url = url
        try:
            yield fake
        finally:
            fake.stop.set()
