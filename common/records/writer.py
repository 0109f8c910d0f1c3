"""The one write path of a record: every change to a record's bookkeeping goes through here.

A record's own fields (title, content, share slug, deletion …) are set by the service that
changes them; what must follow every change is done here, so no writer can miss a step:
- a new version and the device that made it (`insert`, `touch`), or, for an analysis
  result, no new version, so a device's pending edit stays valid (`set_ai_result` …);
- the next number of the owner's change sequence, so synced devices receive the change;
- the tag rows and the search index, from the record as it now is;
- the record event, inside the transaction (see `events`).
The AI columns (`ai_status`, `ai_title`, `ai_summary`, `ai_tags`, `ai_error`) are written
only here as well. `tests/records/test_write_path.py` fails when a module outside this one
assigns any of these columns or UPDATEs the records table itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, cast

from redis.asyncio import Redis
from sqlalchemy import Executable, Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.database.ids import new_id
from common.records import extraction, search
from common.records.events import EventType, publish_record_event
from common.records.models import Record, RecordTag, SyncCounter

AI_TEXT_LIMIT = 200  # the length of the `ai_title` and `ai_error` columns


def _counter_upsert(upsert: Callable[[Table], postgresql.Insert | sqlite.Insert]) -> Executable:
    counters = cast(Table, SyncCounter.__table__)
    return (
        upsert(counters)
        .values(id=bindparam("owner_id"), seq=1)
        .on_conflict_do_update(index_elements=[counters.c.id], set_={"seq": counters.c.seq + 1})
        .returning(counters.c.seq)
    )


# Built once, on the table rather than the mapped class: every write takes a number, inside
# the write lock, and neither building the statement nor ORM bulk handling is needed for it.
_COUNTER_UPSERTS = {"postgresql": _counter_upsert(postgresql.insert), "sqlite": _counter_upsert(sqlite.insert)}
_INSERT_TAGS = insert(cast(Table, RecordTag.__table__))


async def next_change_seq(session: AsyncSession, owner_id: str) -> int:
    """The owner's next change number. The counter row stays locked until the transaction
    ends (PostgreSQL row lock; SQLite's write lock), so numbers are handed out in commit
    order and a reader never skips a change that commits late."""
    statement = _COUNTER_UPSERTS[session.get_bind().dialect.name]
    return int((await session.execute(statement, {"owner_id": owner_id})).scalar_one())


def _ai_status_for(record: Record) -> str:
    return "skipped" if record.ai_opt_out else "pending"


class RecordWriter:
    """Writes records in the caller's transaction (`session`), announcing on `redis`."""

    def __init__(self, session: AsyncSession, redis: Redis) -> None:
        self.session = session
        self.redis = redis

    async def insert(self, record: Record, *, device_id: str | None, prepared: search.IndexText | None = None) -> None:
        """Store `record`, not yet added to the session, as a new record's first version made
        by `device_id`, and announce it as `created`. `prepared`: its segmented text, when
        made before the write lock was taken.

        Raises `IntegrityError` when its given id is already taken (a concurrent create or
        import): the INSERT is in a savepoint, so only it is undone and the caller may go on."""
        record.version = 1
        record.device_id = device_id
        record.ai_status = _ai_status_for(record)
        given_id = bool(record.id)
        if not given_id:
            record.id = new_id()  # now rather than at the flush, so no savepoint is needed
        await extraction.link_written(self.redis, record)
        for attachment in record.attachments:  # an import's files
            await extraction.attachment_added(self.redis, attachment)
        # One INSERT, nothing after it: the change number is taken first (a number lost to
        # a concurrent duplicate leaves a gap, which the feed allows; it never skips).
        record.change_seq = await next_change_seq(self.session, record.owner_id)
        if not given_id:  # a new UUIDv7 cannot be taken: no savepoint's two round trips
            self.session.add(record)
            await self.session.flush()
            await self._changed(record, "created", prepared)
            return
        try:
            # Added inside the savepoint: `begin_nested()` flushes what is pending first, so a
            # record added before it would hit the duplicate outside the savepoint.
            async with self.session.begin_nested():
                self.session.add(record)
                await self.session.flush()
        except IntegrityError:
            if record in self.session:  # rolling back the savepoint has usually expunged it already
                self.session.expunge(record)
            raise
        await self._changed(record, "created", prepared)

    async def touch(
        self,
        record: Record,
        event: Literal["updated", "deleted"],
        *,
        device_id: str | None,
        reanalyse: bool = False,
    ) -> None:
        """After the caller changed `record`'s fields: a new version made by `device_id`
        (pass `record.device_id` to keep the last one), then the change number, tags, search
        index and `event`. `reanalyse`: what analysis reads changed, so a new analysis is owed
        (or skipped, for a record that opted out)."""
        record.version += 1
        record.device_id = device_id
        if reanalyse:
            record.ai_status = _ai_status_for(record)
            record.ai_error = None
        if event == "updated" and not record.is_deleted:
            await extraction.link_written(self.redis, record)
        await self._changed(record, event)

    async def mark_pushed(self, record: Record, fingerprint: str, device_id: str | None) -> None:
        """Say that a sync push by `device_id` made the record's current version (already
        written through `insert` or `touch`): a retry of that push is then recognised."""
        record.push_fingerprint = fingerprint
        record.device_id = device_id
        await self.session.flush()

    def forget_analysis(self, record: Record) -> None:
        """Drop the record's AI result and owe it none (its content is gone for good); the
        caller then `touch`es it."""
        record.ai_title = None
        record.ai_summary = None
        record.ai_tags = []
        record.ai_error = None
        record.ai_status = "skipped"

    async def request_analysis(self, record: Record) -> None:
        """Owe the record a new analysis at its current version: `pending`, announced as
        `updated` so the analysis queue takes it. Neither a new version nor a change number:
        no content changed."""
        record.ai_status = "pending"
        record.ai_error = None
        await self.session.flush()
        await publish_record_event(self.redis, "updated", record)

    async def start_analysis(self, record: Record) -> bool:
        """Show the record's analysis as running; see `_write_analysis`."""
        return await self._write_analysis(record, {"ai_status": "running", "ai_error": None}, final=False)

    async def set_ai_result(self, record: Record, *, title: str, summary: str, tags: Sequence[str]) -> bool:
        """Store an analysis result; see `_write_analysis`."""
        values = {
            "ai_status": "done",
            "ai_title": title[:AI_TEXT_LIMIT],
            "ai_summary": summary,
            "ai_tags": list(tags),
            "ai_error": None,
        }
        return await self._write_analysis(record, values, final=True)

    async def set_ai_failure(self, record: Record, error_class: str) -> bool:
        """Store that the analysis failed, naming only the error's class; see `_write_analysis`."""
        values = {"ai_status": "failed", "ai_error": error_class[:AI_TEXT_LIMIT]}
        return await self._write_analysis(record, values, final=True)

    async def _write_analysis(self, record: Record, values: Mapping[str, object], *, final: bool) -> bool:
        """Write `values` onto `record` if it is still live at the version the analysis was
        made from (`record` is that snapshot); the final states take a change number, so
        synced devices receive them. Never a new version: a device's pending edit stays valid.
        False when the record moved on: the caller rolls back (an edit brings its own event).
        The caller announces a final state as `analyzed` once committed.

        The row is locked before the change counter, in the order every other writer takes
        them (record, then counter), so an edit and an analysis cannot deadlock on PostgreSQL."""
        live = await self.session.scalar(
            select(Record.id)
            .where(Record.id == record.id, Record.version == record.version, Record.is_deleted.is_(False))
            .with_for_update()
        )
        if live is None:
            return False
        if final:
            values = {**values, "change_seq": await next_change_seq(self.session, record.owner_id)}
        await self.session.execute(update(Record).where(Record.id == record.id).values(**values))
        return True

    async def mark_link_running(self, record: Record) -> None:
        """A worker took the link record's extraction: `running`, announced to nobody (the
        finished result is)."""
        record.extraction_status = "running"
        await self.session.flush()

    async def link_details(self, record: Record, details: dict[str, object]) -> None:
        """Keep what else was learned of a link record's page (its preview attachment), with
        no change of its own: the attachment that came with it made the change."""
        record.extraction_details = details
        await self.session.flush()

    async def read_link_again(self, record: Record) -> None:
        """Owe a link record a new reading of its URL (`POST /records/{id}/extract`): its
        extraction is `pending` again, which synced devices see (a change number, no version)."""
        await extraction.request_extraction(self.redis, record, url=extraction.link_url(record))
        await self._changed(record, "updated")

    async def extraction_finished(self, record: Record, link: Mapping[str, object] | None = None) -> bool:
        """After an extraction of one of the record's attachments (stored by the caller) or of
        the link record itself (`link`: its extraction columns, written here): a change
        number but no new version (a device's pending edit stays valid), the search index
        with the text now read, a new analysis owed (it reads that text too), `updated`.
        False when the record is gone or, for `link`, points elsewhere now: the caller rolls
        back. The row is locked before the change counter, as every writer does."""
        live = await self.session.scalar(
            select(Record).where(Record.id == record.id, Record.is_deleted.is_(False)).with_for_update()
        )
        if live is None:
            return False
        if link is not None:
            details = link.get("extraction_details")
            url = details.get("url") if isinstance(details, dict) else None
            asked = (live.extraction_details or {}).get("url")
            if live.extraction_status != "running" or url is None or asked != url or extraction.link_url(live) != url:
                return False  # edited to point elsewhere, or asked again, meanwhile: that asked anew
            for column, value in link.items():
                setattr(live, column, value)
        live.ai_status = _ai_status_for(live)
        live.ai_error = None
        await self._changed(live, "updated")
        return True

    async def _changed(self, record: Record, event: EventType, prepared: search.IndexText | None = None) -> None:
        """After any change to `record`: next change number, tags, search index, event."""
        fresh = event == "created"
        if not fresh:  # a new record took its number before its INSERT (see `insert`)
            record.change_seq = await next_change_seq(self.session, record.owner_id)
            await self.session.flush()
        # The event goes out while the tags and the search row are written: on SQLite the
        # process's writers wait for this transaction, so Redis's round trip is not added to
        # it. It is still in Redis before the commit (see `events`).
        publishing = asyncio.ensure_future(publish_record_event(self.redis, event, record))
        try:
            await self._sync_tags(record, fresh=fresh)
            await search.index_record(self.session, record, prepared, fresh=fresh)
        except BaseException:
            publishing.cancel()
            await asyncio.gather(publishing, return_exceptions=True)
            raise
        await publishing

    async def _sync_tags(self, record: Record, *, fresh: bool) -> None:
        if not fresh:
            await self.session.execute(delete(RecordTag).where(RecordTag.record_id == record.id))
        if record.tags and not record.is_deleted:
            await self.session.execute(
                _INSERT_TAGS, [{"record_id": record.id, "owner_id": record.owner_id, "name": t} for t in record.tags]
            )
