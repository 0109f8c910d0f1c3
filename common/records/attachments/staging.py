"""Staged attachments: files received in full under `uploads/tmp/`, hashed and typed, not yet
part of any record. An upload stages one from its request (`stage_upload`, on the shared
receiver `common.uploads`); an import stages the contents of its archive
(`transfer.archive.stage_attachments`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import anyio
from starlette.requests import Request

from common.errors import UnsupportedMediaType
from common.records.attachments.sniff import Sniffer
from common.records.attachments.storage import AttachmentStorage, discard
from common.uploads import receive_file


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


class _Inspection:
    """The upload's per-chunk hook: its sha256 and its type, from the bytes as they pass."""

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self.sniffer = Sniffer()

    def __call__(self, data: bytes) -> None:
        self.hasher.update(data)
        self.sniffer.feed(data)
        if self.sniffer.hopeless:  # refused part-way: the rest is never read
            raise UnsupportedMediaType("that type of file is not accepted")


async def stage_upload(request: Request, storage: AttachmentStorage, max_bytes: int) -> StagedFile:
    """Stream the request's multipart `file` into a temp file, hashed and sniffed on the way:
    `common.uploads.receive_file`'s refusals, and 415 for a type Jilu does not keep. On any
    error the temp file is gone before the error leaves."""
    inspection = _Inspection()
    temp = await anyio.to_thread.run_sync(storage.new_temp_path)
    received = await receive_file(request, temp, max_bytes, on_chunk=inspection)
    content_type = inspection.sniffer.content_type()
    if content_type is None:
        discard(temp)
        raise UnsupportedMediaType("that type of file is not accepted: images, audio, PDF and UTF-8 text only")
    return StagedFile(temp, received.size, inspection.hasher.hexdigest(), content_type, received.filename)


def stage_bytes(storage: AttachmentStorage, data: bytes, filename: str | None) -> StagedFile:
    """`data` (a file Jilu fetched itself, e.g. a link's preview image) staged as an upload is,
    with the same type check: 415 for a type Jilu does not keep. Blocking: run it in a thread."""
    inspection = _Inspection()
    inspection(data)
    content_type = inspection.sniffer.content_type()
    if content_type is None:
        raise UnsupportedMediaType("that type of file is not accepted: images, audio, PDF and UTF-8 text only")
    temp = storage.new_temp_path()
    temp.write_bytes(data)
    return StagedFile(temp, len(data), inspection.hasher.hexdigest(), content_type, filename)
