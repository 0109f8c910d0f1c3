"""Deleting for good: a soft-deleted record loses its content, AI fields and attachments
(their files go too, once nothing else of the owner refers to them) and stays only as the
sync feed's tombstone.

The owner can purge a deleted record at once; otherwise a background sweep purges records
deleted more than `JILU_TRASH_DAYS` ago. The sweep runs hourly in every replica that serves
records, but a Redis lock (`SET NX EX`) lets only one of them work each hour.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio.to_thread
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.cache import cache_key
from common.config import JiluSettings
from common.database.session import transaction
from common.errors import NotFound
from common.records.attachments.service import collect_unreferenced
from common.records.attachments.storage import AttachmentStorage
from common.records.models import Record
from common.records.repository import RecordRepository
from common.records.writer import RecordWriter

SWEEP_INTERVAL_SECONDS = 3600
# The first sweep waits a little, so that starting a service is not slowed by it.
FIRST_SWEEP_DELAY_SECONDS = 60
# Held for (almost) the whole interval and never released: one sweep per hour in all.
SWEEP_LOCK_KEY = cache_key("records", "trash-sweep")
SWEEP_LOCK_SECONDS = SWEEP_INTERVAL_SECONDS - 60
SWEEP_BATCH = 100
# Temp files older than this were left by a crash; the sweep removes them too.
STALE_TEMP_SECONDS = 24 * 3600

logger = logging.getLogger(__name__)


async def purge_record(session: AsyncSession, redis: Redis, record: Record) -> set[str]:
    """Wipe a soft-deleted record down to its tombstone: content, title, tags, AI fields and
    attachment rows go; the row stays (`is_deleted`, `purged_at` set) for the sync feed.
    Returns the sha256s of the attachments it had: after the commit, pass them to
    `collect_unreferenced` to delete the files nothing refers to any more."""
    if not record.is_deleted:
        raise ValueError("only a deleted record can be purged")
    shas = {attachment.sha256 for attachment in record.attachments}
    record.attachments.clear()  # delete-orphan: the rows go at the flush
    record.title = None
    record.content = ""
    record.tags = []
    record.share_slug = None
    record.purged_at = datetime.now(UTC)
    writer = RecordWriter(session, redis)
    writer.forget_analysis(record)
    await writer.touch(record, "deleted", device_id=record.device_id)  # as a deletion: the device stays
    return shas


async def purge_owned(session: AsyncSession, redis: Redis, owner_id: str, record_id: str) -> set[str]:
    """Purge one of the owner's deleted records (404 for a live one, or none); purging a
    purged record again changes nothing. Returns the sha256s to collect after the commit."""
    record = await RecordRepository(session, owner_id, include_deleted=True).get(record_id, for_update=True)
    if record is None or not record.is_deleted:
        raise NotFound("no such deleted record")
    if record.purged_at is not None:
        return set()
    return await purge_record(session, redis, record)


async def purge_expired(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, data_dir: Path, older_than_days: int = 30
) -> int:
    """Purge every record soft-deleted more than `older_than_days` ago, one transaction per
    record, and delete the files left unreferenced. `sessionmaker` must make write
    sessions (see `attachments.service`). Returns how many records were purged."""
    storage = AttachmentStorage(data_dir)
    cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
    expired = (
        select(Record.id)
        .where(Record.is_deleted.is_(True), Record.purged_at.is_(None), Record.deleted_at < cutoff)
        .order_by(Record.id)
        .limit(SWEEP_BATCH)
    )
    purged, after = 0, ""
    while True:
        async with sessionmaker() as session:
            ids = list((await session.execute(expired.where(Record.id > after))).scalars())
        if not ids:
            return purged
        for record_id in ids:
            after = record_id
            owner_id, shas = await _purge_if_expired(sessionmaker, redis, record_id, cutoff)
            if owner_id is not None:
                purged += 1
                await collect_unreferenced(sessionmaker, storage, owner_id, shas)


async def _purge_if_expired(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, record_id: str, cutoff: datetime
) -> tuple[str | None, Iterable[str]]:
    async with transaction(sessionmaker) as session:
        record = (await session.execute(select(Record).where(Record.id == record_id).with_for_update())).scalar()
        # Checked again under the lock: it may have been purged or restored meanwhile.
        if record is None or not record.is_deleted or record.purged_at is not None:
            return None, ()
        if record.deleted_at is None or record.deleted_at >= cutoff:
            return None, ()
        return record.owner_id, await purge_record(session, redis, record)


async def sweep_trash_once(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, settings: JiluSettings
) -> int | None:
    """One sweep, if this replica takes the hour's lock; None when another replica has it.
    Also clears the temp files a crash left in `uploads/tmp/`."""
    if not await redis.set(SWEEP_LOCK_KEY, secrets.token_hex(8), nx=True, ex=SWEEP_LOCK_SECONDS):
        return None
    storage = AttachmentStorage(settings.data_dir)
    await anyio.to_thread.run_sync(storage.remove_stale_temp_files, STALE_TEMP_SECONDS)
    purged = await purge_expired(sessionmaker, redis, settings.data_dir, settings.trash_days)
    if purged:
        logger.info("purged %d records deleted more than %d days ago", purged, settings.trash_days)
    return purged


async def _sweep_forever(
    write_sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, settings: JiluSettings
) -> None:
    await asyncio.sleep(FIRST_SWEEP_DELAY_SECONDS)
    while True:
        try:
            await sweep_trash_once(write_sessionmaker, redis, settings)
        except Exception:  # a failed sweep (database or Redis away) is retried next hour
            logger.exception("the trash sweep failed; retrying in an hour")
        await asyncio.sleep(SWEEP_INTERVAL_SECONDS)


def start_trash_sweeper(
    write_sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, settings: JiluSettings, stack: AsyncExitStack
) -> asyncio.Task[None]:
    """At start-up: sweep the trash hourly in the background; the task is cancelled when
    the app shuts down (before its engine and Redis close)."""
    task = asyncio.create_task(_sweep_forever(write_sessionmaker, redis, settings), name="jilu-trash-sweeper")

    async def stop() -> None:
        task.cancel()
        await asyncio.wait([task], timeout=5)  # bounded: a stuck sweep cannot hold up shutdown

    stack.push_async_callback(stop)
    return task
