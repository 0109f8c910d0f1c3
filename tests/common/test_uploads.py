"""The one multipart file receiver (common/uploads.py): streamed to disk under its cap, a hook
per chunk, one wording of every refusal, nothing left on disk after one, the body guard
leaving a marked route's body to it, and one way of documenting the body. (Through the real
routes: tests/records/test_attachments.py, test_transfer.py, test_body_caps.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, routing
from starlette.types import Message, Scope

from common.bodies import BodyGuardMiddleware, has_own_size_cap, own_size_cap
from common.errors import FileTooLarge, UnsupportedMediaType, install_error_handlers
from common.uploads import ENVELOPE_BYTES, FIELD, clean_filename, file_body, receive_file

KB = 1024
CAP = 512 * KB  # 0.5 MB: the message shows a cap that is not a whole number of MB
GUARD_KB = 4  # the JSON/form cap, far below CAP
BOUNDARY = "jilu-test"


class Receiver:
    """A test app with a marked and an unmarked receiving route, and what they saw."""

    def __init__(self, tmp_path: Path) -> None:
        self.dest = tmp_path / "upload.part"
        self.chunks: list[bytes] = []
        self.refuse_at: int | None = None  # the hook refuses once this many bytes passed
        self.app = FastAPI()
        install_error_handlers(self.app)
        self.app.add_middleware(BodyGuardMiddleware, max_json_bytes=GUARD_KB * KB)

        async def receive(request: Request) -> dict[str, Any]:
            received = await receive_file(request, self.dest, CAP, on_chunk=self.hook)
            data = received.path.read_bytes().decode()
            return {"size": received.size, "filename": received.filename, "data": data}

        self.app.post("/marked")(own_size_cap(receive))

        async def unmarked(request: Request) -> None:
            await receive_file(request, self.dest, CAP)

        self.app.post("/unmarked")(unmarked)

    def hook(self, data: bytes) -> None:
        self.chunks.append(data)
        if self.refuse_at is not None and sum(map(len, self.chunks)) >= self.refuse_at:
            raise UnsupportedMediaType("refused by the hook")

    def client(self, *, raise_app_exceptions: bool = False) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=raise_app_exceptions)
        return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
def receiver(tmp_path: Path) -> Receiver:
    return Receiver(tmp_path)


def multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart body of `(name, filename or None, data)` parts."""
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


async def in_chunks(body: bytes, size: int = 64 * KB) -> AsyncIterator[bytes]:
    """`body` sent chunked (no Content-Length), as a slow network would deliver it."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def refusal(response: httpx.Response, status: int, code: str) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and body["error"] == code, body
    return body["detail"]


async def test_the_file_streams_to_disk_through_the_hook(receiver: Receiver) -> None:
    data = "照片 ".encode() * 40_000  # several network chunks
    body = multipart(("note", None, b"ignored"), (FIELD, "../../C:\\me\\照片.txt", data), ("after", None, b"x"))
    async with receiver.client() as client:
        response = await client.post("/marked", content=in_chunks(body), headers=MULTIPART)
    assert response.status_code == 200, response.text
    assert response.json() == {"size": len(data), "filename": "照片.txt", "data": data.decode()}
    assert b"".join(receiver.chunks) == data
    assert len(receiver.chunks) > 1


async def test_a_field_without_a_filename_is_the_file_too(receiver: Receiver) -> None:
    async with receiver.client() as client:
        response = await client.post("/marked", content=multipart((FIELD, None, b"plain")), headers=MULTIPART)
    assert response.json() == {"size": 5, "filename": None, "data": "plain"}


async def test_the_guard_leaves_a_marked_route_to_its_own_cap(receiver: Receiver) -> None:
    # 100 times the guard's cap, declared and streamed: both are left to receive_file.
    data = b"y" * (100 * GUARD_KB * KB)
    body = multipart((FIELD, "big.txt", data))
    async with receiver.client() as client:
        declared = await client.post("/marked", content=body, headers=MULTIPART)
        streamed = await client.post("/marked", content=in_chunks(body), headers=MULTIPART)
    assert declared.json()["size"] == streamed.json()["size"] == len(data)
    assert "content-length" not in streamed.request.headers


async def test_exactly_the_cap_goes_through(receiver: Receiver) -> None:
    async with receiver.client() as client:
        response = await client.post("/marked", content=multipart((FIELD, "full", b"z" * CAP)), headers=MULTIPART)
    assert response.json()["size"] == CAP


async def test_past_the_cap_is_one_413_declared_or_streamed(receiver: Receiver) -> None:
    pulled = 0

    async def chunked() -> AsyncIterator[bytes]:
        nonlocal pulled
        yield f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big"\r\n\r\n'.encode()
        for _ in range(4 * CAP // (64 * KB)):
            pulled += 64 * KB
            yield b"x" * (64 * KB)
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    too_big = multipart((FIELD, "big", b"x" * (CAP + 1)))
    async with receiver.client() as client:
        # The file alone is over, the body within the envelope: counted part by part.
        over_by_one = await client.post("/marked", content=too_big, headers=MULTIPART)
        declared = await client.post(
            "/marked", content=b"x" * (CAP + ENVELOPE_BYTES + 1), headers=MULTIPART
        )  # refused on its Content-Length, before a byte is read
        assert not receiver.chunks  # neither reached the hook
        streamed = await client.post("/marked", content=chunked(), headers=MULTIPART)
    detail = "the file is larger than the 0.5 MB allowed"
    for response in (over_by_one, declared, streamed):
        assert refusal(response, 413, "payload_too_large") == detail
    assert pulled <= CAP + 2 * 64 * KB  # stopped reading once past the cap
    assert not receiver.dest.exists()
    assert str(FileTooLarge(25 * 1024 * KB)) == "the file is larger than the 25 MB allowed"


async def test_the_hook_can_refuse_part_way(receiver: Receiver) -> None:
    receiver.refuse_at = 1
    async with receiver.client() as client:
        response = await client.post("/marked", content=multipart((FIELD, "a", b"a" * CAP)), headers=MULTIPART)
    assert refusal(response, 415, "unsupported_media_type") == "refused by the hook"
    assert not receiver.dest.exists()


@pytest.mark.parametrize(
    ("content", "content_type", "status", "detail"),
    [
        (b'{"file": "x"}', "application/json", 415, "send the file as multipart/form-data in the field `file`"),
        (multipart((FIELD, "a", b"a")), "multipart/form-data", 422, "names no boundary"),
        (multipart(("photo", "a.png", b"a")), None, 422, "no file: send it in the multipart field `file`"),
        (multipart((FIELD, "a", b"a"), (FIELD, "b", b"b")), None, 422, "send one file per request"),
        (multipart((FIELD, "a", b"")), None, 422, "the file is empty"),
        (b"not multipart at all", None, 400, "malformed multipart body"),
    ],
    ids=["not-multipart", "no-boundary", "no-file", "two-files", "empty", "malformed"],
)
async def test_every_refusal_leaves_nothing_on_disk(
    receiver: Receiver, content: bytes, content_type: str | None, status: int, detail: str
) -> None:
    headers = {"content-type": content_type} if content_type else MULTIPART
    async with receiver.client() as client:
        response = await client.post("/marked", content=content, headers=headers)
    got = refusal(response, status, {400: "bad_request", 415: "unsupported_media_type"}.get(status, "validation_error"))
    message = got if isinstance(got, str) else got[0]["message"]
    assert detail in message
    if status == 422:
        assert got[0]["field"] == FIELD
    assert not receiver.dest.exists()


async def test_an_interrupted_upload_is_400_and_leaves_nothing(receiver: Receiver) -> None:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'.encode()
    incoming: list[Message] = [
        {"type": "http.request", "body": head + b"a" * (64 * KB), "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/marked",
        "raw_path": b"/marked",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", MULTIPART["content-type"].encode())],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    await receiver.app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert b"the upload was interrupted" in sent[1]["body"]
    assert receiver.chunks  # it had started
    assert not receiver.dest.exists()


async def test_an_unmarked_route_cannot_receive_a_file(receiver: Receiver) -> None:
    # The guard would cap its body at JILU_MAX_JSON_KB: refused loudly, not by surprise later.
    async with receiver.client(raise_app_exceptions=True) as client:
        with pytest.raises(RuntimeError, match="own_size_cap"):
            await client.post("/unmarked", content=multipart((FIELD, "a", b"a")), headers=MULTIPART)
    assert not receiver.dest.exists()


@pytest.mark.parametrize("service", ["mobile", "web"])
def test_every_route_that_receives_a_file_documents_it_one_way(service: str, build_app: Callable[..., FastAPI]) -> None:
    app = build_app(service)
    document = app.openapi()
    marked = [r for r in routing.iter_route_contexts(app.routes) if has_own_size_cap(r)]
    assert {r.path_format for r in marked} == {"/api/v1/records/{record_id}/attachments", "/api/v1/import"}
    for route in marked:
        (method,) = list(route.methods or ())
        operation = document["paths"][route.path_format][method.lower()]
        schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
        description = schema["properties"][FIELD]["description"]
        assert operation["requestBody"] == file_body(description)["requestBody"], route.path_format
        for status in ("400", "413", "415", "422"):
            assert status in operation["responses"], (route.path_format, status)


def test_file_names_lose_their_folders_and_control_characters() -> None:
    assert clean_filename("../../etc/passwd.txt") == "passwd.txt"
    assert clean_filename("C:\\Users\\me\\照片.jpg") == "照片.jpg"
    assert clean_filename("bad\r\nname\x00.png") == "badname.png"
    assert clean_filename("..") is None
    assert clean_filename("x" * 300 + ".txt") == "x" * 255
