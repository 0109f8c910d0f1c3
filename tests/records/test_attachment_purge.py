"""Attachments going away: files deleted with their last reference (never under an upload
about to use them), records purged for good by their owner or by the hourly trash sweep.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import delete, insert, select, text, update

from common.config import JiluSettings
from common.deps import service_state
from common.records.attachments import service as attachment_service
from common.records.models import Attachment, Record
from common.records.purge import SWEEP_LOCK_KEY, purge_expired, sweep_trash_once
from common.state import RecordsState
from mobile_service.app.config import MobileSettings
from mobile_service.app.main import create_app as create_mobile_app
from tests.records.attachment_support import (
    RECORDS,
    Account,
    MakeStack,
    Stack,
    bearer_url,
    image_bytes,
)
from tests.support import assert_error
from web_service.app.config import WebSettings
from web_service.app.main import create_app as create_web_app

# -- deleting -----------------------------------------------------------------------------


async def test_the_file_goes_with_its_last_reference(stack: Stack, owner: Account) -> None:
    record = await stack.record(owner)
    data = image_bytes("JPEG", (700, 700))
    a = await stack.uploaded(owner, record["id"], data, "a.jpg")
    b = await stack.uploaded(owner, record["id"], data, "b.jpg")
    other = await stack.uploaded(owner, record["id"], b"something else", "c.txt")
    path, thumb = stack.storage.path(owner.id, a["sha256"]), stack.storage.thumbnail_path(owner.id, a["sha256"])

    response = await stack.api.delete(bearer_url(a), headers=owner.headers)
    assert response.status_code == 204
    assert path.is_file() and thumb.is_file()  # b still refers to it
    assert (await stack.api.get(b["url"], headers=owner.headers)).content == data
    assert_error(await stack.api.get(a["url"], headers=owner.headers), 404, "not_found")

    assert (await stack.api.delete(bearer_url(b), headers=owner.headers)).status_code == 204
    assert not path.exists() and not thumb.exists()
    assert stack.files() == [stack.storage.path(owner.id, other["sha256"])]

    current = (await stack.api.get(f"{RECORDS}/{record['id']}", headers=owner.headers)).json()
    assert current["version"] == 6  # created, three uploads, two deletions
    assert [x["id"] for x in current["attachments"]] == [other["id"]]


async def test_a_file_is_not_deleted_under_an_upload_about_to_use_it(stack: Stack, owner: Account) -> None:
    """The last row of a content is gone, and its files are being collected, while an upload
    of the same bytes holds the content lock with its new row not yet committed: the
    collector must wait for it, then keep the file."""
    record = await stack.record(owner)
    data = b"the same bytes, uploaded again at the wrong moment"
    body = await stack.uploaded(owner, record["id"], data, "a.txt")
    sha, path = body["sha256"], stack.storage.path(owner.id, body["sha256"])
    await stack.execute(delete(Attachment).where(Attachment.id == body["id"]))  # committed, not yet collected
    write_sessionmaker = service_state(stack.app).write_sessionmaker
    row = {
        "owner_id": owner.id,
        "record_id": record["id"],
        "content_type": "text/plain",
        "size": len(data),
        "sha256": sha,
        "has_thumbnail": False,
        "created_at": datetime.now(UTC),
    }
    async with write_sessionmaker() as upload, upload.begin():
        await upload.execute(insert(Attachment).values(**row))  # on SQLite this takes the write lock
        await attachment_service.lock_content(upload, owner.id, sha)
        collecting = asyncio.create_task(
            attachment_service.collect_unreferenced(write_sessionmaker, stack.storage, owner.id, [sha])
        )
        if upload.get_bind().dialect.name == "postgresql":
            assert await async_wait_until_true(lambda: advisory_lock_waiters(stack), timeout=10)
        else:
            await asyncio.sleep(0.3)  # room for a collector that does not wait to go wrong
        assert not collecting.done()
    assert await collecting == 0
    assert path.read_bytes() == data
    # Once the last reference is really gone, so is the file.
    await stack.execute(delete(Attachment).where(Attachment.sha256 == sha))
    assert await attachment_service.collect_unreferenced(write_sessionmaker, stack.storage, owner.id, [sha]) == 1
    assert not path.exists()


async def advisory_lock_waiters(stack: Stack) -> bool:
    statement = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    async with service_state(stack.app).sessionmaker() as session:
        return bool((await session.execute(statement)).scalar())


async def async_wait_until_true(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return await check()


async def test_purging_keeps_a_tombstone_and_deletes_the_files(stack: Stack, owner: Account) -> None:
    doomed, kept = await stack.record(owner, "doomed"), await stack.record(owner, "kept")
    shared, own = image_bytes("PNG", (600, 300)), b"only in the doomed record"
    await stack.uploaded(owner, doomed["id"], shared, "shared.png")
    own_body = await stack.uploaded(owner, doomed["id"], own, "own.txt")
    kept_body = await stack.uploaded(owner, kept["id"], shared, "shared.png")
    purge_url = f"{RECORDS}/{doomed['id']}/purge"

    # A live record cannot be purged.
    assert_error(await stack.api.post(purge_url, headers=owner.headers), 404, "not_found")
    assert (await stack.api.delete(f"{RECORDS}/{doomed['id']}", headers=owner.headers)).status_code == 204
    assert stack.storage.path(owner.id, own_body["sha256"]).is_file()  # a soft delete keeps files

    assert (await stack.api.post(purge_url, headers=owner.headers)).status_code == 204
    assert not stack.storage.path(owner.id, own_body["sha256"]).exists()
    assert stack.storage.path(owner.id, kept_body["sha256"]).is_file()  # still used by `kept`
    assert (await stack.api.get(kept_body["url"], headers=owner.headers)).content == shared

    async with service_state(stack.app).sessionmaker() as session:
        row = (await session.execute(select(Record).where(Record.id == doomed["id"]))).scalar_one()
        assert row.is_deleted and row.purged_at is not None
        assert (row.title, row.content, row.tags, row.ai_summary, row.ai_tags) == (None, "", [], None, [])
        assert row.attachments == []
        version = row.version
    assert version == 5  # created, two uploads, deleted, purged
    # Purging again changes nothing.
    assert (await stack.api.post(purge_url, headers=owner.headers)).status_code == 204
    assert await stack.scalar(select(Record.version).where(Record.id == doomed["id"])) == version


async def test_records_deleted_long_ago_are_purged_by_the_sweep(stack: Stack, owner: Account) -> None:
    old, recent, live = [await stack.record(owner, name) for name in ("old", "recent", "live")]
    old_body = await stack.uploaded(owner, old["id"], b"old bytes", "old.txt")
    recent_body = await stack.uploaded(owner, recent["id"], b"recent bytes", "recent.txt")
    for record in (old, recent):
        assert (await stack.api.delete(f"{RECORDS}/{record['id']}", headers=owner.headers)).status_code == 204
    long_ago = datetime.now(UTC) - timedelta(days=31)
    await stack.execute(update(Record).where(Record.id == old["id"]).values(deleted_at=long_ago))

    # A temp file a crash left a day ago, and one of an upload in progress.
    stale, fresh = stack.storage.new_temp_path(), stack.storage.new_temp_path()
    stale.write_bytes(b"left by a crash")
    fresh.write_bytes(b"arriving right now")
    a_day_ago = time.time() - 24 * 3600 - 60
    os.utime(stale, (a_day_ago, a_day_ago))

    settings = service_state(stack.app).settings
    sessionmaker = service_state(stack.app).write_sessionmaker
    assert await sweep_trash_once(sessionmaker, stack.redis, settings) == 1
    assert not stale.exists()
    assert fresh.read_bytes() == b"arriving right now"
    assert await stack.redis.ttl(SWEEP_LOCK_KEY) > 0
    # Another replica in the same hour does not sweep.
    assert await sweep_trash_once(sessionmaker, stack.redis, settings) is None

    assert await stack.scalar(select(Record.purged_at).where(Record.id == old["id"])) is not None
    assert await stack.scalar(select(Record.purged_at).where(Record.id == recent["id"])) is None
    assert not stack.storage.path(owner.id, old_body["sha256"]).exists()
    assert stack.storage.path(owner.id, recent_body["sha256"]).is_file()
    assert (await stack.api.get(f"{RECORDS}/{live['id']}", headers=owner.headers)).status_code == 200
    # With a shorter trash period the recent one goes too; nothing is purged twice.
    assert await purge_expired(sessionmaker, stack.redis, settings.data_dir, older_than_days=0) == 1
    assert not stack.storage.path(owner.id, recent_body["sha256"]).exists()
    assert await purge_expired(sessionmaker, stack.redis, settings.data_dir, older_than_days=0) == 0


async def test_the_sweeper_runs_with_the_app_and_stops_with_it(make_stack: MakeStack) -> None:
    async with make_stack() as stack:
        state = service_state(stack.app)
        assert isinstance(state, RecordsState)  # a service that serves records keeps a sweeper
        task = state.trash_sweeper
        assert isinstance(task, asyncio.Task)
        await asyncio.sleep(0)
        assert not task.done()
    assert task.cancelled()


# -- wiring -------------------------------------------------------------------------------


def test_trash_days_is_a_positive_setting(make_settings: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    assert make_settings(JiluSettings).trash_days == 30
    monkeypatch.setenv("JILU_TRASH_DAYS", "7")
    assert make_settings(JiluSettings).trash_days == 7
    for bad in (0, -1):
        with pytest.raises(ValidationError, match="trash_days"):
            make_settings(JiluSettings, trash_days=bad)


def test_both_ports_serve_the_attachment_routes(make_settings: Callable[..., Any]) -> None:
    wanted = {
        ("/api/v1/records/{record_id}/attachments", "post"),
        ("/api/v1/attachments/{attachment_id}", "get"),
        ("/api/v1/attachments/{attachment_id}", "delete"),
        ("/api/v1/records/{record_id}/purge", "post"),
    }
    for create_app, settings_cls in ((create_mobile_app, MobileSettings), (create_web_app, WebSettings)):
        paths = create_app(make_settings(settings_cls)).openapi()["paths"]
        assert {(path, method) for path, method in wanted if method in paths.get(path, {})} == wanted
