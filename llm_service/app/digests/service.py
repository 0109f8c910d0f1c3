"""Digests: which records a period covers, the provider's Markdown, and the stored result.

A period is the owner's local calendar day, or local Monday-to-Sunday week, in their time
zone (`User.time_zone`, Asia/Shanghai when unset or unknown); it is stored as the UTC
instants of its first local midnight and of the one after it. A digest covers the owner's
live records whose `occurred_at` falls in it; records that opted out of AI are left out
when the provider is remote (and then `record_ids` does not list them either).

The provider is called outside any transaction (a slow model never holds the database's
write lock); the result is then stored in one short write. There is one digest per owner,
period and start: writing it again replaces its content and keeps its read/pinned flags.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.ai.models import Digest
from common.database import Sessions, transaction, utcnow
from common.errors import NotFound, Unprocessable
from common.records.models import Record
from common.records.repository import owned_records
from common.users.models import User
from llm_service.app.budgets import BudgetGuard
from llm_service.app.digests.repository import DigestRepository
from llm_service.app.digests.schemas import DigestUpdate, Period
from llm_service.app.providers.base import Language, Provider, SourceRecord, source_of

logger = logging.getLogger("jilu.digests")

DEFAULT_TIME_ZONE = "Asia/Shanghai"
# A period with more records than this is digested on its first ones.
MAX_RECORDS = 500


@dataclass(frozen=True)
class Window:
    """A period in an owner's time zone, as UTC instants (`end` exclusive)."""

    period: Period
    first_day: date
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Owner:
    id: str
    zone: tzinfo
    language: Language


def zone_of(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name or DEFAULT_TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIME_ZONE)


def window_for(period: Period, day: date, zone: tzinfo) -> Window:
    """The day, or the Monday-to-Sunday week, containing `day` in `zone`."""
    first = day if period == "day" else day - timedelta(days=day.weekday())
    after = first + timedelta(days=1 if period == "day" else 7)
    start = datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(after, time(0), tzinfo=zone).astimezone(UTC)
    return Window(period, first, start, end)


def local_today(zone: tzinfo, now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(zone).date()


async def load_owner(session: AsyncSession, owner_id: str) -> Owner:
    user = await session.get(User, owner_id)
    if user is None:
        raise NotFound("no such user")
    language: Language = "en" if user.language == "en" else "zh-CN"
    return Owner(user.id, zone_of(user.time_zone), language)


async def list_page(
    session: AsyncSession, owner_id: str, *, limit: int, cursor: str | None, period: Period | None = None
) -> tuple[list[Digest], str | None]:
    """The owner's digests, the latest period first."""
    digests = DigestRepository(session, owner_id)
    statement = digests.statement()
    if period is not None:
        statement = statement.where(Digest.period == period)
    return await digests.page(statement, limit=limit, cursor=cursor)


async def get(session: AsyncSession, owner_id: str, digest_id: str) -> Digest:
    """One digest of the owner's; anyone else's is not found."""
    return await DigestRepository(session, owner_id).get_or_404(digest_id)


async def update_flags(session: AsyncSession, owner_id: str, digest_id: str, changes: DigestUpdate) -> Digest:
    """Set the read and pinned flags the reader sent."""
    digest = await DigestRepository(session, owner_id).get_or_404(digest_id, for_update=True)
    for field, value in changes.model_dump(exclude_unset=True).items():
        setattr(digest, field, value)
    await session.flush()
    return digest


async def existing(session: AsyncSession, owner_id: str, window: Window) -> Digest | None:
    return await DigestRepository(session, owner_id).for_period(window.period, window.start)


async def records_in(session: AsyncSession, owner: Owner, window: Window, *, remote: bool) -> tuple[SourceRecord, ...]:
    """The live records the digest of `window` covers, oldest first, in the owner's local time."""
    statement = (
        owned_records(owner.id)
        .where(Record.occurred_at >= window.start, Record.occurred_at < window.end)
        .order_by(Record.occurred_at, Record.id)
        .limit(MAX_RECORDS)
    )
    if remote:
        statement = statement.where(Record.ai_opt_out.is_(False))
    rows = (await session.execute(statement)).scalars()
    return tuple(
        replace(source_of(r), title=r.title or r.ai_title, occurred_at=r.occurred_at.astimezone(owner.zone))
        for r in rows
    )


async def _store(
    session: AsyncSession,
    owner_id: str,
    window: Window,
    content: str,
    records: tuple[SourceRecord, ...],
    provider: str,
    *,
    overwrite: bool,
) -> Digest | None:
    """Insert the digest, or (with `overwrite`) replace the content of the one there; None
    when one was there and may not be overwritten."""
    values = {"content": content, "record_ids": [r.id for r in records], "provider": provider, "period_end": window.end}
    for _ in range(2):  # a concurrent insert of the same period: the second pass sees it
        digest = await existing(session, owner_id, window)
        if digest is not None:
            if not overwrite:
                return None
            for field, value in values.items():
                setattr(digest, field, value)
            await session.flush()
            return digest
        digest = Digest(owner_id=owner_id, period=window.period, period_start=window.start, **values)
        try:
            async with session.begin_nested():
                session.add(digest)
                await session.flush()
        except IntegrityError:
            continue
        return digest
    return None


async def write(
    sessions: Sessions,
    provider: Provider,
    owner_id: str,
    period: Period,
    day: date | None = None,
    *,
    overwrite: bool = True,
    skip_empty: bool = False,
    now: datetime | None = None,
    budgets: BudgetGuard | None = None,
) -> Digest | None:
    """Write the digest of the `period` containing `day` (default: the owner's today).

    With `overwrite=False` an existing digest is left alone (None, and the provider is not
    asked); with `skip_empty` a period without records gets none (None). A remote provider
    is called within the owner's daily budget. Provider errors and `BudgetExceeded`
    propagate. A period that has not begun yet → 422.
    """
    async with sessions.read() as session:
        owner = await load_owner(session, owner_id)
        today = local_today(owner.zone, now)
        window = window_for(period, day or today, owner.zone)
        if window.first_day > today:
            raise Unprocessable("date", "that period has not begun yet")
        if not overwrite and await existing(session, owner_id, window) is not None:
            return None
        records = await records_in(session, owner, window, remote=provider.is_remote)
    if skip_empty and not records:
        return None
    meter = budgets if provider.is_remote else None
    if meter is not None:
        await meter.ensure_allowed(owner_id)
    content, usage = await provider.digest(records, period, owner.language)
    if meter is not None:
        await meter.record(owner_id, usage.total)
    async with transaction(sessions.write) as session:
        digest = await _store(session, owner_id, window, content, records, provider.name, overwrite=overwrite)
    logger.info(
        "%s digest of %s for user %s: %d records, %s, %s tokens",
        period,
        window.first_day,
        owner_id,
        len(records),
        provider.name,
        usage.total,
    )
    return digest
