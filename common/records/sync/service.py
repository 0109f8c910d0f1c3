"""Sync: the change feed over the per-owner change sequence, and a device's batch of edits.

The feed is ordered by `change_seq`, never by time: sequence numbers are handed out in commit
order (`writer.next_change_seq`), so a reader that has seen number N has seen every change
before it, however the writes interleaved.

A push applies each item in its own savepoint, so an item that cannot be applied changes
nothing and the others still apply. An item is `applied` when its edit was based on the
server's current version; `conflict`, with the server's record, when it was not (the edit is
not applied, and the device still has it to merge); `rejected` when it can never apply, a
malformed item included (each item is validated here, not as part of the body, so one bad
item does not cost the batch). A
retried batch is recognised by the fingerprint an applied item leaves on its record and is
answered `applied` again without being applied twice.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from sqlalchemy import func
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Conflict, CursorAhead
from common.records import service as record_service
from common.records.attachments.links import AttachmentLinks
from common.records.models import Record
from common.records.repository import owned_records
from common.records.schemas import (
    PushErrorCode,
    RecordCreate,
    RecordUpdate,
    SyncChanges,
    SyncPush,
    SyncPushItem,
    SyncPushResult,
    SyncResult,
)
from common.records.views import change_view, record_public, tombstone
from common.records.writer import RecordWriter

M = TypeVar("M", bound=BaseModel)

# A malformed item's id is echoed in its result only when it is a short string.
MAX_ECHOED_ID = 64

# One answer for an id that is someone else's and for one that names nothing of the caller's,
# so a push reveals nothing about other users' records.
UNUSABLE_ID = "that id cannot be used: it names no record of yours (make a new id for a new record)"


class _Rejected(Exception):
    """The item can never apply as sent; its savepoint is rolled back."""

    def __init__(self, code: PushErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


async def changes(
    session: AsyncSession, owner_id: str, *, since: int, limit: int, links: AttachmentLinks | None
) -> SyncChanges:
    """The owner's records changed after `since` (deleted ones as tombstones), oldest change
    first; `links` makes the attachments' URLs."""
    statement = (
        owned_records(owner_id, include_deleted=True)
        .where(Record.change_seq > since)
        .order_by(Record.change_seq)
        .limit(limit + 1)
    )
    rows = list((await session.execute(statement)).scalars())
    if not rows:
        # Nothing after `since`: up to date, unless `since` is past every change numbered (a
        # cursor from before a restore from backup). Asked only here, so a page costs nothing more.
        head = await head_cursor(session, owner_id)
        if since > head:
            raise CursorAhead(cursor=head)
    page = rows[:limit]
    return SyncChanges(
        changes=[change_view(record, links) for record in page],
        cursor=page[-1].change_seq if page else since,
        has_more=len(rows) > limit,
    )


async def head_cursor(session: AsyncSession, owner_id: str) -> int:
    """The owner's cursor now: what `changes` reports as `cursor` once paged to the end, so
    `since=<it>` answers only what changes after this call (a change still uncommitted holds
    a higher number, see `writer.next_change_seq`)."""
    statement = owned_records(owner_id, include_deleted=True).with_only_columns(
        func.coalesce(func.max(Record.change_seq), 0)
    )
    return int((await session.execute(statement)).scalar_one())


async def push(
    session: AsyncSession,
    redis: Redis,
    owner_id: str,
    batch: SyncPush,
    *,
    links: AttachmentLinks | None,
    device_id: str | None = None,
) -> SyncPushResult:
    """Apply a device's batch, item by item in order; one result per item. An item that is
    not a well-formed `SyncPushItem` is `rejected` on its own line; the others still apply.
    `links` makes the attachment URLs of the records answered."""
    device = batch.device_id or device_id
    parsed = [_parse_item(raw) for raw in batch.items]
    items = {index: item for index, item in enumerate(parsed) if isinstance(item, SyncPushItem)}
    fingerprints = {index: push_fingerprint(device, item) for index, item in items.items()}
    pusher = _Pusher(session, redis, owner_id, device, links)
    results = []
    for index, item in enumerate(parsed):
        if isinstance(item, SyncResult):
            results.append(item)
            continue
        # A batch that touched a record twice leaves the later item's fingerprint on it; on a
        # retry that also says the earlier item was applied.
        marks = {fingerprints[j] for j, other in items.items() if j >= index and other.id == item.id}
        results.append(await pusher.push(item, fingerprints[index], marks))
    return SyncPushResult(results=results)


def _parse_item(raw: Any) -> SyncPushItem | SyncResult:
    """The item, or its `rejected` result naming what is wrong with it."""
    if not isinstance(raw, dict):
        return _rejected_item(None, "an item is an object {id, op, base_version, data}")
    try:
        return SyncPushItem.model_validate(raw)
    except ValidationError as exc:
        return _rejected_item(raw.get("id"), _problems(exc))


def _rejected_item(raw_id: Any, problem: str) -> SyncResult:
    record_id = None
    if isinstance(raw_id, str) and len(raw_id) <= MAX_ECHOED_ID:
        try:
            record_id = str(uuid.UUID(raw_id))  # as a well-formed item's id would read
        except ValueError:
            record_id = raw_id
    return SyncResult(id=record_id, status="rejected", code="invalid_item", error=f"invalid item: {problem}")


def push_fingerprint(device_id: str | None, item: SyncPushItem) -> str:
    """What identifies one push item across retries: device, id, op, base version and data."""
    canonical = json.dumps(
        [device_id or "", item.id, item.op, item.base_version, item.data],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class _Pusher:
    session: AsyncSession
    redis: Redis
    owner_id: str
    device: str | None
    links: AttachmentLinks | None

    async def push(self, item: SyncPushItem, fingerprint: str, retry_marks: set[str]) -> SyncResult:
        """One item in its own savepoint: `fingerprint` is left on the record it changes;
        finding one of `retry_marks` there means the item was applied before."""
        try:
            async with self.session.begin_nested():
                record = await self._load_for_update(item.id)
                if record is not None:
                    return await self._apply(record, item, fingerprint, retry_marks)
                if item.op == "upsert" and item.base_version == 0:
                    return await self._create(item, fingerprint, retry_marks)
                raise _Rejected("unusable_id", UNUSABLE_ID)
        except _Rejected as exc:
            return SyncResult(id=item.id, status="rejected", code=exc.code, error=str(exc))
        except (IntegrityError, DataError):
            # Whatever the database refused of this item was rolled back with its savepoint.
            error = "the item could not be stored as sent"
            return SyncResult(id=item.id, status="rejected", code="unstorable", error=error)

    async def _load_for_update(self, record_id: str) -> Record | None:
        statement = (
            owned_records(self.owner_id, include_deleted=True)
            .where(Record.id == record_id)
            .with_for_update()
            # A savepoint rolled back earlier in the batch may have left this row expired.
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(statement)).scalar()

    async def _create(self, item: SyncPushItem, fingerprint: str, retry_marks: set[str]) -> SyncResult:
        values = _validated(RecordCreate, {"id": item.id, **_data_of(item)})
        if values.id != item.id:
            raise _Rejected("invalid_data", "invalid data: data.id: differs from the item's id")
        try:
            record, created = await record_service.create(
                self.session, self.redis, self.owner_id, values, device_id=self.device
            )
        except Conflict as exc:  # taken meanwhile by another user
            raise _Rejected("unusable_id", UNUSABLE_ID) from exc
        if not created:  # created meanwhile by this user, from another request
            return await self._apply(record, item, fingerprint, retry_marks)
        await self._leave_fingerprint(record, fingerprint)
        return SyncResult(id=item.id, status="applied", record=record_public(record, self.links))

    async def _apply(self, record: Record, item: SyncPushItem, fingerprint: str, retry_marks: set[str]) -> SyncResult:
        if record.push_fingerprint in retry_marks:  # a retry: the item was applied already
            return SyncResult(id=item.id, status="applied", record=change_view(record, self.links))
        if record.is_deleted:
            if item.op == "delete":
                return SyncResult(id=item.id, status="applied", record=tombstone(record))
            return SyncResult(
                id=item.id, status="conflict", record=tombstone(record), code="deleted", error="the record was deleted"
            )
        if item.base_version != record.version:
            error = f"the record is at version {record.version}, not {item.base_version}"
            return SyncResult(
                id=item.id,
                status="conflict",
                record=record_public(record, self.links),
                code="version_conflict",
                error=error,
            )
        if item.op == "delete":
            await record_service.soft_delete(
                self.session, self.redis, self.owner_id, record.id, links=self.links, if_match=item.base_version
            )
        else:
            changes = _validated(RecordUpdate, _data_of(item))
            if changes.version is not None and changes.version != item.base_version:
                raise _Rejected(
                    "invalid_data",
                    "invalid data: data.version: differs from base_version; name it in base_version only",
                )
            await record_service.update(
                self.session,
                self.redis,
                self.owner_id,
                record.id,
                changes,
                links=self.links,
                if_match=item.base_version,
                device_id=self.device,
            )
            if record.version == item.base_version:  # nothing changed: nothing to remember
                return SyncResult(id=item.id, status="applied", record=record_public(record, self.links))
        await self._leave_fingerprint(record, fingerprint)
        return SyncResult(id=item.id, status="applied", record=change_view(record, self.links))

    async def _leave_fingerprint(self, record: Record, fingerprint: str) -> None:
        await RecordWriter(self.session, self.redis).mark_pushed(record, fingerprint, self.device)


def _data_of(item: SyncPushItem) -> dict[str, Any]:
    if item.data is None:
        raise _Rejected("invalid_item", "invalid item: data: an upsert carries the record's fields in `data`")
    return item.data


def _validated(model: type[M], data: dict[str, Any]) -> M:
    try:
        values = model.model_validate(data)
    except ValidationError as exc:
        raise _Rejected("invalid_data", "invalid data: " + _problems(exc, prefix="data")) from exc
    return values


def _problems(exc: ValidationError, prefix: str | None = None) -> str:
    """`field: message; …` for each problem, the field as a dotted path (`data.title`)."""
    problems = []
    for error in exc.errors():
        path = [prefix, *error["loc"]] if prefix else list(error["loc"])
        field = ".".join(str(part) for part in path) or "item"
        problems.append(f"{field}: {str(error['msg']).removeprefix('Value error, ')}")
    return "; ".join(problems)
