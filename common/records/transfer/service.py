"""Export a user's records as a zip; import such a zip into the caller's account.

An import restores every record of the archive as the caller's: under its own id when that
id is free, under a new one when anyone holds it (never overwriting, never saying whose it
is), and not at all when the caller already has it. New ids are derived from the caller and
the archived id, so importing the same archive twice adds nothing either way.

The archive is checked in full, and its attachments staged in `uploads/tmp/`, before the
database is touched; each record then goes through `RecordWriter.insert`, so the change feed,
tags, search index and event stream all learn of it. The files are placed under their
content locks once the rows are written, as an upload's are (see `attachments.service`),
so no file is collected under an import about to refer to it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import IO

import anyio.to_thread
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.database.base import utcnow
from common.database.ids import new_id
from common.errors import Conflict
from common.records.attachments.service import lock_content
from common.records.attachments.staging import StagedFile
from common.records.attachments.storage import AttachmentStorage
from common.records.models import Attachment, Record
from common.records.repository import owned_records
from common.records.schemas import ImportReport
from common.records.transfer import archive
from common.records.transfer.archive import ImportLimits
from common.records.transfer.schemas import ArchivedRecord
from common.records.views import record_public
from common.records.writer import RecordWriter
from common.uploads import clean_filename

RENAMED_ID_NAMESPACE = uuid.UUID("6f1c0a52-5d4e-4c1b-9a57-3c8e2f0b7d19")
INSERT_ATTEMPTS = 3


async def export(session: AsyncSession, owner_id: str, storage: AttachmentStorage) -> tuple[IO[bytes], int]:
    """The owner's live records as a zip in a rewound temporary file, and its size."""
    statement = owned_records(owner_id).order_by(Record.occurred_at, Record.id)
    rows = (await session.execute(statement)).scalars().all()
    # No links: an archive keeps the bearer paths, signed URLs in it would only expire.
    records = [record_public(record, None).model_dump(mode="json") for record in rows]
    return await anyio.to_thread.run_sync(archive.write_export, records, owner_id, storage)


async def import_archive(
    session: AsyncSession,
    redis: Redis,
    owner_id: str,
    file: IO[bytes],
    storage: AttachmentStorage,
    limits: ImportLimits,
) -> ImportReport:
    """Restore an export into `owner_id`'s account; a bad archive changes nothing."""
    opened = await anyio.to_thread.run_sync(archive.open_archive, file, limits)
    try:
        records = await anyio.to_thread.run_sync(archive.read_records, opened, limits)
        shas = {attachment.sha256 for record in records for attachment in record.attachments}
        staged = await anyio.to_thread.run_sync(archive.stage_attachments, opened, shas, storage, limits)
    finally:
        opened.close()
    try:
        # The content locks first, in one order, as an upload takes them before the change
        # sequence: a file is never collected between its placing and its rows' commit.
        for sha in sorted(staged):
            await lock_content(session, owner_id, sha)
        restore = _Restore(session, redis, owner_id, staged)
        for record in records:
            await restore.record(record)
        used = [staged[sha] for sha in sorted(restore.used)]
        await anyio.to_thread.run_sync(_place_all, used, owner_id, storage)
    finally:
        archive.discard_all(staged)  # what was not placed: the contents of skipped records
    return restore.report


def renamed_id(owner_id: str, archived_id: str) -> str:
    """The id a record gets in `owner_id`'s account when its own is taken: always the same
    for the same owner and archived id, and telling nothing about either."""
    return str(uuid.uuid5(RENAMED_ID_NAMESPACE, f"{owner_id}:{archived_id}"))


def _place_all(files: list[StagedFile], owner_id: str, storage: AttachmentStorage) -> None:
    for file in files:
        archive.place(file, owner_id, storage)


@dataclass
class _Restore:
    session: AsyncSession
    redis: Redis
    owner_id: str
    files: dict[str, StagedFile]

    def __post_init__(self) -> None:
        self.report = ImportReport(records=0, attachments=0, renamed=0, skipped=0)
        self.used: set[str] = set()

    async def record(self, item: ArchivedRecord) -> None:
        for _ in range(INSERT_ATTEMPTS):
            record_id = await self._free_id_for(item.id)
            if record_id is None:
                self.report.skipped += 1
                return
            if await self._insert(record_id, item):
                break
            # The id was taken while this import ran (PostgreSQL): look again.
        else:
            raise Conflict("records were being written with the same ids; import again")
        self.report.records += 1
        if record_id != item.id:
            self.report.renamed += 1
        self.report.attachments += len(item.attachments)
        self.used.update(attachment.sha256 for attachment in item.attachments)

    async def _free_id_for(self, archived_id: str) -> str | None:
        """The id to restore `archived_id` under, or None when the owner already has it.

        Taken by someone else, the record gets an id derived from the owner and the archived
        id, so importing the same archive again finds it and skips it; only if that one is
        taken too (by someone else) does it get a random id."""
        for candidate in (archived_id, renamed_id(self.owner_id, archived_id)):
            holder = await self._holder_of(candidate)
            if holder == self.owner_id:
                return None
            if holder is None:
                return candidate
        return new_id()

    async def _holder_of(self, record_id: str) -> str | None:
        # Across owners on purpose: only to learn whether the id is free. Nothing of another
        # user's record is read beyond that, nor reported.
        statement = select(Record.owner_id).where(Record.id == record_id)
        return (await self.session.execute(statement)).scalar()

    async def _insert(self, record_id: str, item: ArchivedRecord) -> bool:
        record = self._new_record(record_id, item)
        try:
            # No device made it: every device's sync picks it up.
            await RecordWriter(self.session, self.redis).insert(record, device_id=None)
        except IntegrityError:
            return False
        return True

    def _new_record(self, record_id: str, item: ArchivedRecord) -> Record:
        now = utcnow()
        created_at = item.created_at or now
        attachments = [
            Attachment(
                owner_id=self.owner_id,
                filename=clean_filename(attachment.filename),
                content_type=file.content_type,
                size=file.size,
                sha256=file.sha256,
                has_thumbnail=file.thumbnail is not None,
                created_at=now,
            )
            for file, attachment in ((self.files[a.sha256], a) for a in item.attachments)
        ]
        return Record(
            id=record_id,
            owner_id=self.owner_id,
            kind=item.kind,
            title=item.title,
            content=item.content,
            tags=item.tags,
            occurred_at=item.occurred_at,
            created_at=created_at,
            updated_at=item.updated_at or created_at,
            ai_opt_out=item.ai_opt_out,
            attachments=attachments,
        )
