"""The export zip: written from a user's records, and read back without trusting it.

    records/<id>.md          front matter (id, kind, title, tags, dates, ai_opt_out), then the Markdown
    attachments/<sha256>     each attachment's bytes, once per content
    records.json             every record in the RecordPublic shape, attachments listed by sha256

Everything here blocks (zip, files, hashing): call it off the event loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from pydantic import ValidationError

from common.errors import PayloadTooLarge, Unprocessable
from common.records.attachments.sniff import Sniffer
from common.records.attachments.staging import StagedFile
from common.records.attachments.storage import AttachmentStorage
from common.records.attachments.thumbnails import THUMBNAIL_SOURCES, write_thumbnail
from common.records.transfer.schemas import ArchivedRecord, archived_records

RECORDS_JSON = "records.json"
ATTACHMENTS_DIR = "attachments/"
FRONT_MATTER_KEYS = ("id", "kind", "title", "tags", "occurred_at", "created_at", "updated_at", "ai_opt_out")
CHUNK_SIZE = 64 * 1024
MIB = 1024 * 1024
MAX_ENTRIES = 100_000
MAX_RECORDS_JSON_BYTES = 256 * MIB
# How zipfile reports, while reading an entry, bytes that are not what its directory says
# (bad CRC, truncated or corrupt data, an unsupported method, a password).
_ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)
# Characters JSON leaves raw but YAML does not take raw in a quoted string (C1 controls, the
# Unicode line and paragraph separators, non-characters).
_YAML_RAW_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportLimits:
    archive_bytes: int  # the uploaded zip
    uncompressed_bytes: int  # all its entries together
    attachment_bytes: int  # one attachment, as for an upload

    @classmethod
    def for_upload_cap(cls, max_upload_mb: int) -> ImportLimits:
        attachment = max_upload_mb * MIB
        return cls(archive_bytes=10 * attachment, uncompressed_bytes=40 * attachment, attachment_bytes=attachment)


# -- export -------------------------------------------------------------------------------


def _yaml_value(value: Any) -> str:
    """A JSON value, which YAML reads as the same value."""
    text = json.dumps(value, ensure_ascii=False)
    return _YAML_RAW_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def markdown_file(record: dict[str, Any]) -> str:
    """`records/<id>.md`: YAML front matter, a blank line, then the record's Markdown."""
    lines = ["---", *(f"{key}: {_yaml_value(record[key])}" for key in FRONT_MATTER_KEYS), "---", ""]
    return "\n".join(lines) + "\n" + record["content"]


def write_export(records: list[dict[str, Any]], owner_id: str, storage: AttachmentStorage) -> tuple[IO[bytes], int]:
    """The zip of `records` (RecordPublic dumps) in a temporary file, rewound; and its size."""
    output = tempfile.TemporaryFile()  # handed to the response, which closes it
    try:
        with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            written: set[str] = set()
            for record in records:
                present = [a for a in record["attachments"] if _add_file(archive, a, owner_id, storage, written)]
                record["attachments"] = present
                archive.writestr(f"records/{record['id']}.md", markdown_file(record))
            archive.writestr(RECORDS_JSON, json.dumps(records, ensure_ascii=False, indent=1))
        size = output.seek(0, 2)
        output.seek(0)
    except BaseException:
        output.close()
        raise
    return output, size


def _add_file(
    archive: zipfile.ZipFile, attachment: dict[str, Any], owner_id: str, storage: AttachmentStorage, written: set[str]
) -> bool:
    sha = attachment["sha256"]
    if sha in written:
        return True
    try:
        archive.write(storage.path(owner_id, sha), ATTACHMENTS_DIR + sha)
    except FileNotFoundError:
        # Listing it without its bytes would make the archive impossible to import.
        logger.warning("attachment file %s of %s is missing; left out of the export", sha, owner_id)
        return False
    written.add(sha)
    return True


# -- import: reading ----------------------------------------------------------------------


def _invalid(message: str) -> Unprocessable:
    return Unprocessable("file", message)


def _is_unsafe_name(name: str) -> bool:
    """An entry name that could point outside a folder it were extracted to."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/"):
        return True
    parts = name.split("/")
    return ".." in parts or ":" in parts[0]


def open_archive(file: IO[bytes], limits: ImportLimits) -> zipfile.ZipFile:
    """Open an uploaded zip after checking its directory: entry names, count, sizes."""
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise _invalid("not a zip archive (expected a Jilu export)") from exc
    try:
        _check_directory(archive, limits)
    except BaseException:
        archive.close()
        raise
    return archive


def _check_directory(archive: zipfile.ZipFile, limits: ImportLimits) -> None:
    entries = archive.infolist()
    if len(entries) > MAX_ENTRIES:
        raise PayloadTooLarge(f"the archive has more than {MAX_ENTRIES} entries")
    total = 0
    for entry in entries:
        if _is_unsafe_name(entry.filename):
            raise _invalid(f"unsafe entry name {entry.filename!r}: absolute or leaving its folder")
        if entry.flag_bits & 0x1:
            raise _invalid(f"{entry.filename!r} is encrypted")
        total += entry.file_size
    if total > limits.uncompressed_bytes:
        raise PayloadTooLarge(f"the archive unpacks to more than {limits.uncompressed_bytes // MIB} MB")


def read_records(archive: zipfile.ZipFile, limits: ImportLimits) -> list[ArchivedRecord]:
    """`records.json`, validated, with every attachment it lists present in the archive."""
    try:
        entry = archive.getinfo(RECORDS_JSON)
    except KeyError:
        raise _invalid(f"no {RECORDS_JSON} in the archive: not a Jilu export") from None
    if entry.file_size > MAX_RECORDS_JSON_BYTES:
        raise PayloadTooLarge(f"{RECORDS_JSON} is larger than {MAX_RECORDS_JSON_BYTES // MIB} MB")
    try:
        with archive.open(entry) as source:
            raw = source.read(MAX_RECORDS_JSON_BYTES + 1)
        records = archived_records.validate_json(raw)
    except _ZIP_READ_ERRORS as exc:
        raise _invalid(f"{RECORDS_JSON} cannot be read from the archive") from exc
    except ValidationError as exc:
        raise _invalid(f"{RECORDS_JSON} is malformed: {_problems(exc)}") from exc
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            raise _invalid(f"{RECORDS_JSON} lists the id {record.id} twice")
        seen.add(record.id)
        for attachment in record.attachments:
            name = ATTACHMENTS_DIR + attachment.sha256
            try:
                size = archive.getinfo(name).file_size
            except KeyError:
                raise _invalid(f"{name} is listed in {RECORDS_JSON} but not in the archive") from None
            if size > limits.attachment_bytes:
                raise PayloadTooLarge(f"{name} is larger than {limits.attachment_bytes // MIB} MB")
    return records


def _problems(exc: ValidationError, shown: int = 5) -> str:
    parts = []
    for error in exc.errors()[:shown]:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]) or "the top level"
        parts.append(f"{where}: {str(error['msg']).removeprefix('Value error, ')}")
    more = exc.error_count() - shown
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


# -- import: staging attachments ---------------------------------------------------------


def stage_attachments(
    archive: zipfile.ZipFile, shas: set[str], storage: AttachmentStorage, limits: ImportLimits
) -> dict[str, StagedFile]:
    """Copy each content to a temp file under `uploads/tmp/` (with its thumbnail, for an
    image), checking that the bytes match their sha256 and are a type Jilu keeps. Nothing is
    placed yet: the import does that under each content's lock. On failure nothing is left."""
    staged: dict[str, StagedFile] = {}
    try:
        for sha in sorted(shas):
            staged[sha] = _stage_one(archive, sha, storage, limits)
    except BaseException:
        discard_all(staged)
        raise
    return staged


def _stage_one(archive: zipfile.ZipFile, sha: str, storage: AttachmentStorage, limits: ImportLimits) -> StagedFile:
    name = ATTACHMENTS_DIR + sha
    file = StagedFile(storage.new_temp_path(), 0, sha, "", None)
    try:
        digest, sniffer = hashlib.sha256(), Sniffer()
        with _reading(name), archive.open(name) as source, file.path.open("wb") as target:
            while chunk := source.read(CHUNK_SIZE):
                file.size += len(chunk)
                if file.size > limits.attachment_bytes:
                    raise PayloadTooLarge(f"{name} is larger than {limits.attachment_bytes // MIB} MB")
                digest.update(chunk)
                sniffer.feed(chunk)
                target.write(chunk)
        if digest.hexdigest() != sha:
            raise _invalid(f"{name} does not hold the content its name says")
        content_type = sniffer.content_type()
        if content_type is None:
            raise _invalid(f"{name} is not a kind of file Jilu keeps")
        file.content_type = content_type
        if content_type in THUMBNAIL_SOURCES:
            thumbnail = file.path.with_name(file.path.name + ".thumb.jpg")
            if write_thumbnail(file.path, thumbnail):
                file.thumbnail = thumbnail
    except BaseException:
        file.discard()
        raise
    return file


@contextmanager
def _reading(name: str) -> Iterator[None]:
    try:
        yield
    except _ZIP_READ_ERRORS as exc:
        raise _invalid(f"{name} cannot be read from the archive") from exc


def place(file: StagedFile, owner_id: str, storage: AttachmentStorage) -> None:
    """Move a staged content and its thumbnail into the owner's storage (replacing a file of
    the same content is harmless: it is byte for byte the same)."""
    if file.thumbnail is not None:
        storage.place(file.thumbnail, storage.thumbnail_path(owner_id, file.sha256))
    storage.place(file.path, storage.path(owner_id, file.sha256))


def discard_all(staged: dict[str, StagedFile]) -> None:
    for file in staged.values():
        file.discard()
