"""Request bodies and the wire around them (issue 10, "Bodies"): the JSON size cap before
the body is read, 415 naming what a route takes, malformed JSON saying where, raw non-ASCII
request lines, and `OPTIONS`/405 listing a path's methods. (Read-only fields and the raw
Chinese search: tests/records/test_records_bodies.py.)"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi import FastAPI, Request

from common.app import create_service_app
from tests.records.conftest import RECORDS
from tests.support import app_client, assert_error, free_port, serve_app
from user_service.app.config import UserSettings
from user_service.app.main import create_app as create_user_app

MB = 1024 * 1024
CHUNK = 64 * 1024
# Only a server that never answers could take this long; no performance threshold.
DEADLOCK_GUARD = 30


def big_json(size: int) -> bytes:
    """A valid JSON record of `size` bytes: a body only its size makes wrong."""
    padding = size - len(b'{"content": ""}')
    return b'{"content": "' + b"x" * padding + b'"}'


class CountedStream:
    """A chunked request body (no Content-Length) that records how much of it was pulled."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), CHUNK):
            self.pulled += 1
            yield self.body[start : start + CHUNK]

    @property
    def chunks(self) -> int:
        return -(-len(self.body) // CHUNK)


@pytest.fixture
def mobile(build_app: Callable[..., FastAPI]) -> FastAPI:
    # user_service is unreachable: a request that got forwarded would be a 503.
    return build_app("mobile", user_url=f"http://127.0.0.1:{free_port()}", llm_url=f"http://127.0.0.1:{free_port()}")


# -- 413: the JSON cap ----------------------------------------------------------------------


async def test_2mb_json_is_413_without_being_read(mobile: FastAPI) -> None:
    body = big_json(2 * MB)
    headers = {"content-type": "application/json", "authorization": "Bearer whatever"}
    async with app_client(mobile) as client:
        tracemalloc.start()
        try:
            response = await client.post(RECORDS, content=body, headers=headers)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    detail = assert_error(response, 413, "payload_too_large")
    assert detail == "a JSON body may be at most 1024 KB"
    # Parsing it would have made a 2 MB string at least; refused on Content-Length, nothing is read.
    assert peak < MB // 4, f"peak {peak} bytes"


async def test_streamed_json_is_413_once_past_the_cap(mobile: FastAPI) -> None:
    # No Content-Length: the middleware counts, and stops pulling right after the cap.
    stream = CountedStream(big_json(2 * MB))
    async with app_client(mobile) as client:
        tracemalloc.start()
        try:
            response = await client.post(RECORDS, content=stream, headers={"content-type": "application/json"})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert_error(response, 413, "payload_too_large")
    assert stream.pulled <= MB // CHUNK + 1 < stream.chunks
    # About the cap was ever held (as chunks, plus the test client's own buffers), never the
    # whole 2 MB body, let alone its parse.
    assert peak < 2 * MB, f"peak {peak} bytes"


async def test_the_cap_is_a_setting(build_app: Callable[..., FastAPI]) -> None:
    app = build_app("mobile", max_json_kb=4)
    async with app_client(app) as client:
        too_large = await client.post(
            RECORDS, content=big_json(4 * 1024 + 1), headers={"content-type": "application/json"}
        )
        fits = await client.post(RECORDS, content=big_json(4 * 1024), headers={"content-type": "application/json"})
    assert assert_error(too_large, 413, "payload_too_large") == "a JSON body may be at most 4 KB"
    assert fits.status_code == 401  # read, then refused for the missing token


async def test_2mb_json_to_a_forwarded_path_is_413_on_the_forwarding_port(mobile: FastAPI) -> None:
    # Were it forwarded, the owner, not running, would make it a 503.
    async with app_client(mobile) as client:
        response = await client.post(
            "/api/v1/auth/register", content=big_json(2 * MB), headers={"content-type": "application/json"}
        )
    assert_error(response, 413, "payload_too_large")


def raw_exchange(port: int, head: bytes, chunks: list[bytes] | None = None) -> bytes:
    """Send `head` (and each of `chunks` in chunked encoding, without the final empty chunk:
    the body never ends) on a fresh connection; return what the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLOCK_GUARD) as sock:
        sock.sendall(head)
        for chunk in chunks or []:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer) < _expected_length(answer):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer


def _expected_length(answer: bytes) -> int:
    head, _, _ = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return len(answer)


def parse_answer(answer: bytes) -> tuple[int, dict[str, list[str]], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(lines[0].split()[1]), headers, body


async def test_a_slow_chunked_body_through_the_relay_is_413_before_it_ends(
    make_settings: Callable[..., Any], build_app: Callable[..., FastAPI]
) -> None:
    # The owner would take 4 MB: the 413 is the forwarding port's own, and it comes while the
    # client is still sending (the body's last chunk is never sent).
    async with serve_app(create_user_app(make_settings(UserSettings, max_json_kb=4096))) as owner_url:
        mobile = build_app("mobile", user_url=owner_url)
        async with serve_app(mobile) as url:
            port = int(url.rsplit(":", 1)[1])
            head = (
                b"POST /api/v1/auth/register HTTP/1.1\r\nHost: jilu\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunks = [b'{"username": "' + b"x" * (CHUNK - 14)] + [b"x" * CHUNK] * (MB // CHUNK)
            answer = await asyncio.to_thread(raw_exchange, port, head, chunks)
    status, _, body = parse_answer(answer)
    assert status == 413, answer[:300]
    assert json.loads(body) == {"error": "payload_too_large", "detail": "a JSON body may be at most 1024 KB"}


# -- 415: what a route takes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "shown"),
    [
        ("text/plain", "Content-Type 'text/plain'"),
        ("application/x-www-form-urlencoded", "Content-Type 'application/x-www-form-urlencoded'"),
        (None, "no Content-Type"),
    ],
)
async def test_a_json_route_refuses_other_types_with_415(mobile: FastAPI, content_type: str | None, shown: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    async with app_client(mobile) as client:
        response = await client.post(RECORDS, content=b'{"content": "x"}', headers=headers)  # none when None
    detail = assert_error(response, 415, "unsupported_media_type")
    assert detail == f"send the body as application/json (got {shown})"


async def test_415_comes_before_the_body_is_read(mobile: FastAPI) -> None:
    stream = CountedStream(b"x" * 4 * MB)
    async with app_client(mobile) as client:
        response = await client.post(RECORDS, content=stream, headers={"content-type": "text/plain"})
    assert_error(response, 415, "unsupported_media_type")
    assert stream.pulled <= 1  # httpx's transport may have pulled the first chunk; no one read it


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json"]
)
async def test_json_types_pass(mobile: FastAPI, content_type: str) -> None:
    async with app_client(mobile) as client:
        response = await client.post(RECORDS, content=b'{"content": "x"}', headers={"content-type": content_type})
    assert response.status_code == 401  # past the body checks, refused for the missing token


async def test_a_forwarded_path_gets_its_owners_415(
    make_settings: Callable[..., Any], build_app: Callable[..., FastAPI]
) -> None:
    # The relay checks nothing itself: the owner's verdict comes back through the mobile port.
    async with serve_app(create_user_app(make_settings(UserSettings))) as owner_url:
        mobile = build_app("mobile", user_url=owner_url)
        async with app_client(mobile) as client:
            response = await client.post(
                "/api/v1/auth/register", content=b"username=a", headers={"content-type": "text/plain"}
            )
    assert assert_error(response, 415, "unsupported_media_type") == (
        "send the body as application/json (got Content-Type 'text/plain')"
    )


# -- 422: malformed JSON says where ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"content": "x",',
            "malformed JSON at line 1, column 17 (character 16): Expecting property name enclosed in double quotes",
        ),
        (b'{\n  "content": \n}', "malformed JSON at line 3, column 1 (character 16): Expecting value"),
        (  # counted in characters, not bytes: 中文 is two
            b'{"content": "\xe4\xb8\xad\xe6\x96\x87" x}',
            "malformed JSON at line 1, column 18 (character 17): Expecting ',' delimiter",
        ),
    ],
)
async def test_malformed_json_says_where(mobile: FastAPI, body: bytes, message: str) -> None:
    async with app_client(mobile) as client:
        response = await client.post(RECORDS, content=body, headers={"content-type": "application/json"})
    detail = assert_error(response, 422, "validation_error")
    assert detail == [{"field": "body", "message": message, "type": "json_invalid"}]


# -- raw non-ASCII request lines -------------------------------------------------------------


def echo_app(make_settings: Callable[..., Any]) -> FastAPI:
    app = create_service_app("user_service", make_settings(UserSettings))

    @app.get("/test/echo/{word}")
    async def echo(word: str, request: Request, q: str = "") -> dict[str, str]:
        return {"word": word, "q": q, "path": request.url.path}

    return app


async def test_a_raw_non_ascii_request_line_works(make_settings: Callable[..., Any]) -> None:
    # As `curl 'http://host/test/echo/西湖?q=中文'` sends it: UTF-8 bytes, not %-escapes.
    async with serve_app(echo_app(make_settings)) as url:
        port = int(url.rsplit(":", 1)[1])
        head = "GET /test/echo/西湖?q=中文 HTTP/1.1\r\nHost: jilu\r\nConnection: close\r\n\r\n".encode()
        answer = await asyncio.to_thread(raw_exchange, port, head)
        # The line split across reads, and a second request on the same connection, work too.
        split = await asyncio.to_thread(_two_requests_in_pieces, port)
    status, _, body = parse_answer(answer)
    assert status == 200, answer
    assert json.loads(body) == {"word": "西湖", "q": "中文", "path": "/test/echo/西湖"}
    assert split == [
        {"word": "西湖", "q": "中文", "path": "/test/echo/西湖"},
        {"word": "b", "q": "中", "path": "/test/echo/b"},
    ]


def _two_requests_in_pieces(port: int) -> list[Any]:
    """Two requests on one connection, the first one's line cut inside a character."""
    first = "GET /test/echo/西湖?q=中文 HTTP/1.1\r\nHost: j\r\n\r\n".encode()
    second = "GET /test/echo/b?q=中 HTTP/1.1\r\nHost: j\r\nConnection: close\r\n\r\n".encode()
    cut = len(b"GET /test/echo/") + 1  # the first byte of 西 only
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLOCK_GUARD) as sock:
        answers = []
        for pieces in ([first[:cut], first[cut:]], [second]):
            for piece in pieces:
                sock.sendall(piece)
                time.sleep(0.05)  # so the server reads each piece on its own
            answer = b""
            while b"\r\n\r\n" not in answer or len(answer) < _expected_length(answer):
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
            answers.append(json.loads(parse_answer(answer)[2]))
        return answers


async def test_a_request_the_parser_refuses_gets_the_json_shape(make_settings: Callable[..., Any]) -> None:
    async with serve_app(echo_app(make_settings)) as url:
        port = int(url.rsplit(":", 1)[1])
        answer = await asyncio.to_thread(
            raw_exchange, port, b"GET /test/echo/a HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n"
        )
    status, headers, body = parse_answer(answer)
    assert status == 400, answer
    assert headers["content-type"] == ["application/json"]
    assert json.loads(body) == {"error": "bad_request", "detail": "Invalid HTTP request received."}


# -- OPTIONS and 405 list a path's methods ---------------------------------------------------


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        (f"{RECORDS}/some-id", "GET, PATCH, DELETE, OPTIONS"),
        (RECORDS, "GET, POST, OPTIONS"),
        ("/health", "GET, OPTIONS"),
    ],
)
async def test_options_lists_the_methods_of_a_path(mobile: FastAPI, path: str, allow: str) -> None:
    async with app_client(mobile) as client:
        response = await client.options(path)
        wrong = await client.put(path)
    assert response.status_code == 204, response.text
    assert response.headers["allow"] == allow
    assert response.content == b""
    assert response.headers.get("x-request-id")
    assert_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == allow


async def test_options_on_an_unknown_path_is_404(mobile: FastAPI) -> None:
    async with app_client(mobile) as client:
        assert_error(await client.options("/no/such/path"), 404, "not_found")


async def test_cors_preflight_is_still_answered_by_cors(build_app: Callable[..., FastAPI]) -> None:
    app = build_app("mobile", cors_origins=["https://app.example"])
    headers = {"origin": "https://app.example", "access-control-request-method": "PATCH"}
    async with app_client(app) as client:
        preflight = await client.options(f"{RECORDS}/some-id", headers=headers)
        plain = await client.options(f"{RECORDS}/some-id", headers={"origin": "https://app.example"})
    assert preflight.status_code == 200
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
    assert "allow" not in preflight.headers
    assert plain.status_code == 204
    assert plain.headers["allow"] == "GET, PATCH, DELETE, OPTIONS"
    assert plain.headers["access-control-allow-origin"] == "https://app.example"


async def test_options_on_a_forwarded_path_shows_the_owners_methods(
    make_settings: Callable[..., Any], build_app: Callable[..., FastAPI]
) -> None:
    async with serve_app(create_user_app(make_settings(UserSettings))) as owner_url:
        mobile = build_app("mobile", user_url=owner_url)
        async with app_client(mobile) as client:
            me = await client.options("/api/v1/users/me")
            register = await client.options("/api/v1/auth/register")
            wrong = await client.put("/api/v1/auth/register", json={})
    assert (me.status_code, me.headers["allow"]) == (204, "GET, PATCH, OPTIONS")
    assert (register.status_code, register.headers["allow"]) == (204, "POST, OPTIONS")
    assert_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == "POST, OPTIONS"
