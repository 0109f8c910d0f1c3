"""Sharing a record: make or revoke its public slug, and read a shared record by slug.

A slug is 24 random bytes (192 bits) in URL-safe base64, so links cannot be guessed or
enumerated. Revoking clears it for good: sharing again makes a new one, and the old link
stays dead. Deleting a record clears its slug too (`service.mark_deleted`).
"""

from __future__ import annotations

import re
import secrets

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload

from common.errors import NotFound
from common.records.models import Record
from common.records.repository import RecordRepository
from common.records.schemas import PublicRecord, ShareLink
from common.records.views import public_view
from common.records.writer import RecordWriter
from common.security.rate_limit import RateLimiter

SLUG_BYTES = 24  # 192 bits of randomness; the contract asks for at least 128
SHARE_PATH = "/s/"
# Slugs are what `secrets.token_urlsafe` makes; anything else is not worth a query.
_SLUG_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# Public reads per client address: plenty for people, too few to scan for links.
PUBLIC_READ_RATE = "120/minute"


def new_slug() -> str:
    return secrets.token_urlsafe(SLUG_BYTES)


def share_link(slug: str, web_base_url: str = "") -> ShareLink:
    """The link of `slug`: absolute given the web port's base URL (`common.public_urls`)."""
    return ShareLink(slug=slug, url=f"{web_base_url}{SHARE_PATH}{slug}")


async def current_link(session: AsyncSession, owner_id: str, record_id: str, web_base_url: str = "") -> ShareLink:
    """The link of the owner's live record; `NotFound` when it is not shared or not theirs.
    Only reads: asking never makes a link."""
    record = await RecordRepository(session, owner_id).get(record_id)
    if record is None or record.share_slug is None:
        raise NotFound("no such shared record")
    return share_link(record.share_slug, web_base_url)


async def share(
    session: AsyncSession, redis: Redis, owner_id: str, record_id: str, web_base_url: str = ""
) -> tuple[ShareLink, bool]:
    """Give the owner's live record a public slug, or return the one it has. Returns the
    link and whether it was made now. Sharing changes the record's `shared` flag, so it is
    a change like an edit: a new version, sequenced for sync, announced as an event."""
    record = await RecordRepository(session, owner_id).get_or_404(record_id, for_update=True)
    if record.share_slug is not None:
        return share_link(record.share_slug, web_base_url), False
    record.share_slug = new_slug()
    await _touch(session, redis, record)
    return share_link(record.share_slug, web_base_url), True


async def revoke(session: AsyncSession, redis: Redis, owner_id: str, record_id: str) -> None:
    """Take the record's link down for good (a no-op when it is not shared)."""
    record = await RecordRepository(session, owner_id).get_or_404(record_id, for_update=True)
    if record.share_slug is None:
        return
    record.share_slug = None
    await _touch(session, redis, record)


async def _touch(session: AsyncSession, redis: Redis, record: Record) -> None:
    # No device made this change, so every device's sync picks it up.
    await RecordWriter(session, redis).touch(record, "updated", device_id=None)


async def shared_record(session: AsyncSession, slug: str) -> PublicRecord | None:
    """The live record shared under `slug`, in its public shape; None for anything else."""
    if not _SLUG_SHAPE.match(slug):
        return None
    statement = (
        select(Record)
        .where(Record.share_slug == slug, Record.is_deleted.is_(False))
        .options(raiseload(Record.attachments))  # attachments are the owner's only
    )
    record = (await session.execute(statement)).scalar()
    return public_view(record) if record is not None else None


async def count_public_read(limiter: RateLimiter, client: str) -> None:
    """Count one public read for `client`; raises `RateLimited` past `PUBLIC_READ_RATE`."""
    await limiter.check(PUBLIC_READ_RATE, "share-public", client)
