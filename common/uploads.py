"""Receiving one file from a multipart/form-data body, as it streams in: the one receiver of
the routes that take a file (an attachment upload, the import zip).

The body is parsed chunk by chunk and the file part goes straight to a temp file the caller
names; nothing is spooled before it is counted. The size cap holds while the bytes arrive
(a `Content-Length` already over it is refused before the first read), and a per-chunk hook
sees each piece of the file on its way to disk, to hash, sniff or report progress, and may
refuse the upload part-way. On any error the temp file is gone before the error leaves.
`request.form()` and FastAPI's `UploadFile` parameters would read the whole body first.

The body guard (`common.bodies`) caps every other multipart body at `JILU_MAX_JSON_KB`; a
route that receives a file here must be marked `own_size_cap` so the guard leaves its body
to this cap (checked on every call).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from common.bodies import MULTIPART, has_own_size_cap, media_type
from common.errors import (
    FULL_DISK_ERRNOS,
    BadRequest,
    FileTooLarge,
    InsufficientStorage,
    JiluError,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
)

FIELD = "file"
# Room for the multipart framing and a few small fields around the file itself.
ENVELOPE_BYTES = 64 * 1024
MAX_FILENAME_CHARS = 255
_UNSAFE_IN_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")

# What `receive_file` may refuse with, for a route's `responses=`.
RECEIVE_ERRORS: tuple[type[JiluError], ...] = (
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable,
    InsufficientStorage,
)

ChunkHook = Callable[[bytes], None]
"""Called with each piece of the file before it is written; raise a `JiluError` to refuse
the upload there. It runs on the event loop: keep it cheap (hashing, sniffing, counting)."""


@dataclass(frozen=True)
class ReceivedFile:
    """A file received in full at `path` (the caller's to move or remove)."""

    path: Path
    size: int
    filename: str | None  # as the client named it, cleaned (`clean_filename`)


def clean_filename(raw: str | None) -> str | None:
    """The last path component, without control characters, at most 255 characters."""
    if not raw:
        return None
    name = unicodedata.normalize("NFC", raw.replace("\\", "/").rsplit("/", 1)[-1])
    name = _UNSAFE_IN_NAME.sub("", name).strip().lstrip(".")
    return name[:MAX_FILENAME_CHARS] or None


def file_body(description: str, field: str = FIELD) -> dict[str, Any]:
    """`openapi_extra` documenting a body of one file in the multipart field `field` (the
    route reads it itself with `receive_file`, so FastAPI cannot describe it)."""
    schema = {
        "type": "object",
        "required": [field],
        "properties": {field: {"type": "string", "format": "binary", "description": description}},
    }
    return {"requestBody": {"required": True, "content": {MULTIPART: {"schema": schema}}}}


def _decode(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


@dataclass
class _Parts:
    """What the parser's (synchronous) callbacks saw; drained after every chunk."""

    field: str
    header_name: bytearray = dataclasses.field(default_factory=bytearray)
    header_value: bytearray = dataclasses.field(default_factory=bytearray)
    headers: dict[str, bytes] = dataclasses.field(default_factory=dict)
    in_file: bool = False
    seen_file: bool = False
    file_done: bool = False
    filename: str | None = None
    pending: list[bytes] = dataclasses.field(default_factory=list)
    error: str | None = None

    def callbacks(self) -> dict[str, object]:
        def on_part_begin() -> None:
            self.headers = {}

        def on_header_field(data: bytes, start: int, end: int) -> None:
            self.header_name += data[start:end]

        def on_header_value(data: bytes, start: int, end: int) -> None:
            self.header_value += data[start:end]

        def on_header_end() -> None:
            self.headers[self.header_name.decode("latin-1").lower()] = bytes(self.header_value)
            self.header_name.clear()
            self.header_value.clear()

        def on_headers_finished() -> None:
            _, options = parse_options_header(self.headers.get("content-disposition", b"").decode("latin-1"))
            if _decode(options.get(b"name", b"")) != self.field:
                return  # another field: its bytes are passed over, never kept
            if self.seen_file:
                self.error = "send one file per request"
                return
            self.in_file = self.seen_file = True
            self.filename = clean_filename(_decode(options[b"filename"])) if b"filename" in options else None

        def on_part_data(data: bytes, start: int, end: int) -> None:
            if self.in_file:
                self.pending.append(data[start:end])

        def on_part_end() -> None:
            if self.in_file:
                self.in_file = False
                self.file_done = True

        return {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        }


def _parser(request: Request, parts: _Parts) -> MultipartParser:
    content_type = request.headers.get("content-type")
    if media_type(content_type) != MULTIPART:
        raise UnsupportedMediaType(f"send the file as multipart/form-data in the field `{parts.field}`")
    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise Unprocessable(parts.field, "the multipart/form-data Content-Type names no boundary")
    try:
        return MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
    except ValueError as exc:  # a boundary longer than multipart allows
        raise Unprocessable(parts.field, "malformed multipart boundary") from exc


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _check_route(request: Request) -> None:
    # Unmarked, the body guard would cap this body at JILU_MAX_JSON_KB before this cap.
    if not has_own_size_cap(request.scope.get("route")):
        raise RuntimeError("a route that calls receive_file must be marked @own_size_cap (common.bodies)")


async def receive_file(
    request: Request, dest: Path, max_bytes: int, *, on_chunk: ChunkHook | None = None, field: str = FIELD
) -> ReceivedFile:
    """Stream the multipart field `field` of `request` into `dest`. Raise 413 (`FileTooLarge`)
    past `max_bytes`, 415 for a body that is not multipart/form-data, 422 for no boundary, no
    such field, two of it or an empty file, 400 for a malformed or interrupted body, 507
    when the disk is full (or over its quota), and whatever `on_chunk` raises. On any error
    `dest` is removed before the error leaves."""
    parts, size, body_bytes = _Parts(field), 0, 0
    try:
        _check_route(request)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes + ENVELOPE_BYTES:
            raise FileTooLarge(max_bytes)
        parser = _parser(request, parts)
        async with await anyio.open_file(dest, "wb") as out:
            async for chunk in request.stream():
                body_bytes += len(chunk)
                if body_bytes > max_bytes + ENVELOPE_BYTES:
                    raise FileTooLarge(max_bytes)
                try:
                    parser.write(chunk)
                except MultipartParseError as exc:
                    raise BadRequest("malformed multipart body") from exc
                if parts.error:
                    raise Unprocessable(field, parts.error)
                data = b"".join(parts.pending)
                parts.pending.clear()
                size += len(data)
                if size > max_bytes:
                    raise FileTooLarge(max_bytes)
                if data:
                    if on_chunk is not None:
                        on_chunk(data)
                    await out.write(data)
        parser.finalize()
        if not parts.file_done:
            raise Unprocessable(field, f"no file: send it in the multipart field `{field}`")
        if size == 0:
            raise Unprocessable(field, "the file is empty")
    except BaseException as exc:
        _remove(dest)  # synchronously: this also runs when the request is cancelled
        if isinstance(exc, ClientDisconnect):
            raise BadRequest("the upload was interrupted") from exc
        if isinstance(exc, OSError) and exc.errno in FULL_DISK_ERRNOS:
            raise InsufficientStorage("the server's disk is full: the file was not stored") from exc
        raise
    return ReceivedFile(dest, size, parts.filename)
