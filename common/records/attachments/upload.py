"""Receiving an upload: the multipart body is parsed as it streams in, and the `file` part
goes straight to a temp file, hashed, sized and sniffed on the way.

Nothing is spooled before it is counted: the size cap holds while the bytes arrive, and a
file that is too large, or can no longer be any type we take, is refused at once with its
temp file removed. `request.form()` would read the whole body first.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from common.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from common.records.attachments.sniff import Sniffer
from common.records.attachments.storage import AttachmentStorage, discard

FIELD = "file"
# Room for the multipart framing and a few small fields around the file itself.
ENVELOPE_BYTES = 64 * 1024
MAX_FILENAME_CHARS = 255
_UNSAFE_IN_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


@dataclass
class StagedFile:
    """An upload received in full under `uploads/tmp/`, not yet part of any record."""

    path: Path
    size: int
    sha256: str
    content_type: str
    filename: str | None
    thumbnail: Path | None = None

    def discard(self) -> None:
        """Remove whatever temp files were not moved into place."""
        discard(self.path)
        discard(self.thumbnail)


def clean_filename(raw: str | None) -> str | None:
    """The last path component, without control characters, at most 255 characters."""
    if not raw:
        return None
    name = unicodedata.normalize("NFC", raw.replace("\\", "/").rsplit("/", 1)[-1])
    name = _UNSAFE_IN_NAME.sub("", name).strip().lstrip(".")
    return name[:MAX_FILENAME_CHARS] or None


def _decode(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


@dataclass
class _Parts:
    """What the parser's (synchronous) callbacks saw; drained after every chunk."""

    header_name: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[str, bytes] = field(default_factory=dict)
    in_file: bool = False
    seen_file: bool = False
    file_done: bool = False
    filename: str | None = None
    pending: list[bytes] = field(default_factory=list)
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
            if _decode(options.get(b"name", b"")) != FIELD:
                return
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


def _boundary(request: Request) -> bytes:
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data":
        raise UnsupportedMediaType("send the file as multipart/form-data in the field `file`")
    if not boundary:
        raise Unprocessable(FIELD, "the multipart/form-data Content-Type names no boundary")
    return boundary


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the file is larger than the {max_bytes / (1024 * 1024):g} MB allowed")


def _refuse_declared_size(request: Request, max_bytes: int) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + ENVELOPE_BYTES:
        raise _too_large(max_bytes)


async def receive_upload(request: Request, storage: AttachmentStorage, max_bytes: int) -> StagedFile:
    """Stream the request's multipart `file` into a temp file; raise 413 past `max_bytes`,
    415 for a type we do not take, 422 when there is no (or an empty) file. On any error the
    temp file is gone before the error leaves."""
    _refuse_declared_size(request, max_bytes)
    parts = _Parts()
    try:
        parser = MultipartParser(_boundary(request), parts.callbacks())  # type: ignore[arg-type]
    except ValueError as exc:  # a boundary longer than multipart allows
        raise Unprocessable(FIELD, "malformed multipart boundary") from exc
    hasher, sniffer = hashlib.sha256(), Sniffer()
    size = body_bytes = 0
    temp = await anyio.to_thread.run_sync(storage.new_temp_path)
    try:
        async with await anyio.open_file(temp, "wb") as out:
            async for chunk in request.stream():
                body_bytes += len(chunk)
                if body_bytes > max_bytes + ENVELOPE_BYTES:
                    raise _too_large(max_bytes)
                try:
                    parser.write(chunk)
                except MultipartParseError as exc:
                    raise BadRequest("malformed multipart body") from exc
                if parts.error:
                    raise Unprocessable(FIELD, parts.error)
                data = b"".join(parts.pending)
                parts.pending.clear()
                size += len(data)
                if size > max_bytes:
                    raise _too_large(max_bytes)
                if data:
                    hasher.update(data)
                    sniffer.feed(data)
                    await out.write(data)
                if sniffer.hopeless:
                    raise UnsupportedMediaType("that type of file is not accepted")
        parser.finalize()
        if not parts.file_done:
            raise Unprocessable(FIELD, "no file: send it in the multipart field `file`")
        if size == 0:
            raise Unprocessable(FIELD, "the file is empty")
        content_type = sniffer.content_type()
        if content_type is None:
            raise UnsupportedMediaType("that type of file is not accepted: images, audio, PDF and UTF-8 text only")
    except BaseException as exc:
        discard(temp)  # synchronously: this also runs when the request is cancelled
        if isinstance(exc, ClientDisconnect):
            raise BadRequest("the upload was interrupted") from exc
        raise
    return StagedFile(temp, size, hasher.hexdigest(), content_type, parts.filename)
