"""Export and import: the zip's contents, a round trip into another account (equal records,
byte-identical attachments), re-imports that add nothing, ids taken by someone else, and
archives that are refused whole (malformed, unsafe paths, too large).

Real apps in process (user_service to log in, mobile_service for records) on one migrated
database (SQLite, and PostgreSQL when one answers), the real test Redis, and a temporary
data dir whose `uploads/` the tests inspect.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from PIL import Image
from redis.asyncio import Redis

from common.deps import service_state
from common.records.transfer.archive import FRONT_MATTER_KEYS
from common.records.transfer.service import renamed_id
from mobile_service.app.config import MobileSettings
from mobile_service.app.main import create_app as create_mobile_app
from tests.records.attachment_support import without_links
from tests.records.conftest import RECORDS, Account, RecordsStack
from tests.support import app_client, assert_error

EXPORT = "/api/v1/export"
IMPORT = "/api/v1/import"
MB = 1024 * 1024
COMPARED = ("kind", "title", "content", "tags", "occurred_at", "created_at", "updated_at", "ai_opt_out")
TRICKY_TITLE = 'Say "hi": #1 — 中文\u2028next \\ line'


def png_bytes(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "PNG")
    return out.getvalue()


PNG = png_bytes()
TEXT = "会议纪要: budget notes\n".encode()


# -- helpers ------------------------------------------------------------------------------


def uploads_of(stack: RecordsStack) -> Path:
    return Path(service_state(stack.apps["mobile"]).settings.data_dir) / "uploads"


def stored_files(stack: RecordsStack) -> set[Path]:
    """Every file under uploads/, temp files included."""
    root = uploads_of(stack)
    return {path for path in root.rglob("*") if path.is_file()} if root.exists() else set()


async def upload(stack: RecordsStack, account: Account, record_id: str, data: bytes, name: str) -> dict[str, Any]:
    response = await stack.mobile.post(
        f"{RECORDS}/{record_id}/attachments", files={"file": (name, data)}, headers=account.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def export(stack: RecordsStack, account: Account) -> bytes:
    response = await stack.mobile.get(EXPORT, headers=account.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert re.fullmatch(
        r'attachment; filename="jilu-export-\d{4}-\d{2}-\d{2}\.zip"', response.headers["content-disposition"]
    )
    return response.content


async def post_import(stack: RecordsStack, account: Account, data: bytes) -> httpx.Response:
    return await stack.mobile.post(
        IMPORT, files={"file": ("export.zip", data, "application/zip")}, headers=account.headers
    )


async def import_ok(stack: RecordsStack, account: Account, data: bytes) -> dict[str, int]:
    response = await post_import(stack, account, data)
    assert response.status_code == 200, response.text
    return response.json()


async def all_records(stack: RecordsStack, account: Account) -> list[dict[str, Any]]:
    response = await stack.mobile.get(RECORDS, params={"limit": 200}, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def zip_of(entries: dict[str, bytes | str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def only_json(*records: dict[str, Any]) -> bytes:
    """An archive of just records.json, listing `records`."""
    return zip_of({"records.json": json.dumps(list(records))})


def archived(**fields: Any) -> dict[str, Any]:
    """A record as records.json lists it."""
    return {
        "id": str(uuid.uuid4()),
        "kind": "note",
        "title": "from an archive",
        "content": "archived content",
        "tags": ["kept"],
        "occurred_at": "2025-03-04T05:06:07+00:00",
        "attachments": [],
        **fields,
    }


def described(record: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    return [(a["filename"], a["content_type"], a["size"], a["sha256"]) for a in record["attachments"]]


def front_matter(markdown: str) -> tuple[dict[str, Any], str]:
    assert markdown.startswith("---\n")
    head, _, body = markdown[4:].partition("\n---\n")
    assert body.startswith("\n")  # a blank line between the front matter and the Markdown
    return yaml.safe_load(head), body[1:]


async def owners_collection(stack: RecordsStack, owner: Account) -> dict[str, dict[str, Any]]:
    """Four records of the owner's, one deleted; a PNG shared by two of them and a text file."""
    diary = await stack.create(
        stack.mobile,
        owner,
        kind="diary",
        title=TRICKY_TITLE,
        content="今天下午开会讨论预算\n\n- [ ] follow up",
        tags=["旅行", "Work: Q3"],
        occurred_at="2025-06-01T08:30:00+08:00",
        ai_opt_out=True,
    )
    photo = await stack.create(stack.mobile, owner, kind="photo", title=None, content="", tags=[])
    notes = await stack.create(stack.mobile, owner, kind="note", title="notes", content="plain *markdown*")
    gone = await stack.create(stack.mobile, owner, content="deleted before the export")
    await upload(stack, owner, diary["id"], PNG, "红色.png")
    await upload(stack, owner, photo["id"], PNG, "same.png")
    await upload(stack, owner, notes["id"], TEXT, "minutes.txt")
    assert (await stack.mobile.delete(f"{RECORDS}/{gone['id']}", headers=owner.headers)).status_code == 204
    records = {r["id"]: r for r in await all_records(stack, owner)}
    assert len(records) == 3
    return records


# -- export -------------------------------------------------------------------------------


async def test_the_export_holds_markdown_files_attachments_and_records_json(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    records = await owners_collection(records_stack, records_owner)

    archive = zipfile.ZipFile(io.BytesIO(await export(records_stack, records_owner)))

    png_sha, text_sha = hashlib.sha256(PNG).hexdigest(), hashlib.sha256(TEXT).hexdigest()
    markdown = [f"records/{record_id}.md" for record_id in records]
    expected = [*markdown, f"attachments/{png_sha}", f"attachments/{text_sha}", "records.json"]
    assert sorted(archive.namelist()) == sorted(expected)
    assert archive.read(f"attachments/{png_sha}") == PNG
    assert archive.read(f"attachments/{text_sha}") == TEXT
    listed = json.loads(archive.read("records.json"))
    # Its attachments keep the bearer paths: signed URLs in an archive would only expire.
    # (In-process, this once passed only because a request's signed links leaked into the export.)
    links = [(a["url"], a["thumbnail_url"]) for r in listed for a in r["attachments"]]
    assert sorted(links, key=str) == sorted(
        [
            (f"/api/v1/attachments/{a['id']}", f"/api/v1/attachments/{a['id']}?thumb=1" if a["thumbnail_url"] else None)
            for r in records.values()
            for a in r["attachments"]
        ],
        key=str,
    )

    def unlinked(record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "attachments": [without_links(a) for a in record["attachments"]]}

    assert {r["id"]: unlinked(r) for r in listed} == {i: unlinked(r) for i, r in records.items()}
    for record_id, record in records.items():
        meta, body = front_matter(archive.read(f"records/{record_id}.md").decode())
        assert body == record["content"]
        # Quoted as JSON, every value reads back from YAML as it was: dates stay strings.
        assert meta == {key: record[key] for key in FRONT_MATTER_KEYS}
    diary = next(r for r in records.values() if r["kind"] == "diary")
    assert diary["title"] == TRICKY_TITLE
    assert diary["tags"] == ["旅行", "work: q3"]


async def test_an_export_holds_nothing_of_another_user(
    records_stack: RecordsStack, records_owner: Account, records_stranger: Account
) -> None:
    await owners_collection(records_stack, records_owner)

    archive = zipfile.ZipFile(io.BytesIO(await export(records_stack, records_stranger)))

    assert archive.namelist() == ["records.json"]
    assert json.loads(archive.read("records.json")) == []


async def test_export_and_import_need_a_login(records_stack: RecordsStack) -> None:
    assert_error(await records_stack.mobile.get(EXPORT), 401, "unauthorized")
    response = await records_stack.mobile.post(IMPORT, files={"file": ("x.zip", zip_of({"records.json": "[]"}))})
    assert_error(response, 401, "unauthorized")


# -- import -------------------------------------------------------------------------------


async def test_a_round_trip_into_another_user_gives_equal_records_and_identical_files(
    records_stack: RecordsStack, records_owner: Account, records_stranger: Account
) -> None:
    stack = records_stack
    originals = await owners_collection(stack, records_owner)
    data = await export(stack, records_owner)
    events_before = len(await stack.events())

    report = await import_ok(stack, records_stranger, data)

    # The owner's ids are taken (by the owner): every record gets a new one.
    assert report == {"records": 3, "attachments": 3, "renamed": 3, "skipped": 0}
    restored = {r["id"]: r for r in await all_records(stack, records_stranger)}
    assert set(restored) == {renamed_id(records_stranger.id, record_id) for record_id in originals}
    for record_id, original in originals.items():
        copy = restored[renamed_id(records_stranger.id, record_id)]
        assert {k: copy[k] for k in COMPARED} == {k: original[k] for k in COMPARED}
        assert copy["version"] == 1 and copy["shared"] is False
        assert copy["ai"]["status"] == ("skipped" if original["ai_opt_out"] else "pending")
        described = [(a["filename"], a["content_type"], a["size"], a["sha256"]) for a in copy["attachments"]]
        assert described == [
            (a["filename"], a["content_type"], a["size"], a["sha256"]) for a in original["attachments"]
        ]
        for attachment, source in zip(copy["attachments"], original["attachments"], strict=True):
            assert (attachment["thumbnail_url"] is None) == (source["thumbnail_url"] is None)
            download = await stack.mobile.get(attachment["url"], headers=records_stranger.headers)
            assert download.status_code == 200
            assert download.content == (PNG if attachment["content_type"] == "image/png" else TEXT)
            if attachment["thumbnail_url"]:
                thumb = await stack.mobile.get(attachment["thumbnail_url"], headers=records_stranger.headers)
                assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    # The stranger's files are the stranger's own copies.
    for sha in {hashlib.sha256(PNG).hexdigest(), hashlib.sha256(TEXT).hexdigest()}:
        assert (uploads_of(stack) / records_stranger.id / sha[:2] / sha).read_bytes() in (PNG, TEXT)
    # The owner's records are as they were.
    assert {r["id"]: r for r in await all_records(stack, records_owner)} == originals
    # Feed, search and event stream all know of the imported records.
    feed = await stack.mobile.get("/api/v1/sync/changes", headers=records_stranger.headers)
    assert {c["id"] for c in feed.json()["changes"]} == set(restored)
    hits = await stack.mobile.get("/api/v1/search", params={"q": "开会"}, headers=records_stranger.headers)
    assert [h["record"]["id"] for h in hits.json()["items"]] == [
        r["id"] for r in restored.values() if r["kind"] == "diary"
    ]
    new_events = (await stack.events())[events_before:]
    assert sorted((e["type"], e["owner_id"], e["record_id"]) for e in new_events) == sorted(
        ("created", records_stranger.id, record_id) for record_id in restored
    )


async def test_importing_again_adds_nothing(
    records_stack: RecordsStack, records_owner: Account, records_stranger: Account
) -> None:
    stack = records_stack
    originals = await owners_collection(stack, records_owner)
    data = await export(stack, records_owner)
    files = stored_files(stack)

    into_self = await import_ok(stack, records_owner, data)
    assert into_self == {"records": 0, "attachments": 0, "renamed": 0, "skipped": 3}
    assert {r["id"]: r for r in await all_records(stack, records_owner)} == originals
    assert stored_files(stack) == files

    first = await import_ok(stack, records_stranger, data)
    second = await import_ok(stack, records_stranger, data)

    assert first["records"] == 3
    assert second == {"records": 0, "attachments": 0, "renamed": 0, "skipped": 3}
    assert len(await all_records(stack, records_stranger)) == 3
    assert await stack.record_count(records_stranger.id) == 3


async def test_free_ids_are_kept_and_taken_ones_renamed(
    records_stack: RecordsStack, records_owner: Account, records_stranger: Account
) -> None:
    stack = records_stack
    taken = await stack.create(stack.mobile, records_owner, title="the owner's", content="not to be overwritten")
    free = archived(title="a free id")
    clash = archived(id=taken["id"], title="same id as the owner's record", content="from the archive")
    data = only_json(free, clash)

    report = await import_ok(stack, records_stranger, data)

    assert report == {"records": 2, "attachments": 0, "renamed": 1, "skipped": 0}
    restored = {r["title"]: r for r in await all_records(stack, records_stranger)}
    assert restored["a free id"]["id"] == free["id"]
    assert restored["same id as the owner's record"]["id"] not in (taken["id"], free["id"])
    assert restored["same id as the owner's record"]["content"] == "from the archive"
    mine = await stack.mobile.get(f"{RECORDS}/{taken['id']}", headers=records_owner.headers)
    assert (mine.json()["content"], mine.json()["version"]) == ("not to be overwritten", 1)
    # Nothing of the owner's record reached the stranger.
    assert "not to be overwritten" not in str(restored)


async def test_an_id_the_caller_deleted_is_not_restored_twice(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    stack = records_stack
    record = archived()
    data = only_json(record)
    assert (await import_ok(stack, records_owner, data))["records"] == 1
    assert (await stack.mobile.delete(f"{RECORDS}/{record['id']}", headers=records_owner.headers)).status_code == 204

    again = await import_ok(stack, records_owner, data)

    assert again == {"records": 0, "attachments": 0, "renamed": 0, "skipped": 1}
    assert await all_records(stack, records_owner) == []


def malformed_archives() -> dict[str, bytes]:
    """Archives to refuse whole (422), each with a valid record that must not be imported either."""
    good = archived()
    png_sha = hashlib.sha256(PNG).hexdigest()
    elf = b"\x7fELF\x02\x01\x01\x00" + bytes(64)
    elf_sha = hashlib.sha256(elf).hexdigest()
    with_png = json.dumps([good, archived(attachments=[{"sha256": png_sha, "filename": "a.png"}])])
    with_elf = json.dumps([good, archived(attachments=[{"sha256": elf_sha, "filename": "a.png"}])])
    export_like = zip_of({"records.json": with_png, f"attachments/{png_sha}": PNG})
    # The directory is intact but an entry's bytes are not what its checksum says.
    stored = io.BytesIO()
    with zipfile.ZipFile(stored, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("records.json", json.dumps([good]))
    corrupt = stored.getvalue().replace(b"archived content", b"archived CONTENT")

    def beside_good(name: str) -> bytes:
        return zip_of({"records.json": json.dumps([good]), name: "x"})

    return {
        "not a zip": b"this is not a zip at all",
        "truncated": export_like[: len(export_like) // 2],
        "corrupt entry": corrupt,
        "no records.json": zip_of({f"records/{good['id']}.md": "---\n---\n"}),
        "records.json not json": zip_of({"records.json": "[{"}),
        "records.json not a list": zip_of({"records.json": json.dumps({"records": [good]})}),
        "a record too long": only_json(good, archived(title="x" * 201)),
        "an unknown kind": only_json(good, archived(kind="video")),
        "a naive date": only_json(good, archived(occurred_at="2025-01-01T00:00")),
        "year one": only_json(good, archived(occurred_at="0001-01-01T00:30:00+01:00")),
        "a NUL character": only_json(good, archived(content="a\x00b")),
        "an id twice": only_json(good, good),
        "an attachment missing": zip_of({"records.json": with_png}),
        "an attachment's bytes changed": zip_of({"records.json": with_png, f"attachments/{png_sha}": PNG + b"x"}),
        "an executable attachment": zip_of({"records.json": with_elf, f"attachments/{elf_sha}": elf}),
        "parent path": beside_good("../evil.md"),
        "nested parent path": beside_good("records/../../evil.md"),
        "absolute path": beside_good("/tmp/evil.md"),
        "backslash path": beside_good("..\\evil.md"),
        "drive path": beside_good("C:evil.md"),
    }


async def test_a_malformed_archive_is_refused_and_changes_nothing(
    records_stack: RecordsStack, records_owner: Account
) -> None:
    stack = records_stack
    await owners_collection(stack, records_owner)
    count, files, events = await stack.record_count(), stored_files(stack), len(await stack.events())

    for name, data in malformed_archives().items():
        response = await post_import(stack, records_owner, data)
        assert response.status_code == 422, (name, response.text)
        assert_error(response, 422, "validation_error")

    assert await stack.record_count() == count
    assert stored_files(stack) == files
    assert len(await stack.events()) == events
    assert not list(Path(uploads_of(stack)).parent.parent.rglob("evil.md"))


async def test_an_import_must_be_a_multipart_file(records_stack: RecordsStack, records_owner: Account) -> None:
    api, headers = records_stack.mobile, records_owner.headers
    as_json = await api.post(IMPORT, json={"records": []}, headers=headers)
    assert "multipart/form-data" in assert_error(as_json, 415, "unsupported_media_type")  # type: ignore[operator]
    no_file = await api.post(IMPORT, files={"other": ("x.zip", b"PK")}, headers=headers)
    assert_error(no_file, 422, "validation_error")
    as_field = await api.post(IMPORT, data={"file": "not a file"}, files={"x": ("x", b"")}, headers=headers)
    assert_error(as_field, 422, "validation_error")
    broken = await api.post(
        IMPORT, content=b"--abc\r\nnonsense", headers={**headers, "content-type": "multipart/form-data; boundary=abc"}
    )
    assert broken.status_code in (400, 422), broken.text


async def test_size_caps_are_413_and_leave_nothing(
    records_stack: RecordsStack,
    records_owner: Account,
    make_settings: Callable[..., Any],
    migrated_database_url: str,
    redis: Redis,
) -> None:
    # A second mobile_service with a 1 MB upload cap: archives up to 10 MB, 40 MB unpacked.
    settings = make_settings(MobileSettings, database_url=migrated_database_url, max_upload_mb=1)
    async with app_client(create_mobile_app(settings)) as small:
        count, files = await records_stack.record_count(), stored_files(records_stack)
        headers = records_owner.headers
        listing = json.dumps([archived()])
        big_attachment = bytes(MB + 1)
        big_sha = hashlib.sha256(big_attachment).hexdigest()
        cases = {
            "the archive itself": b"PK" + bytes(10 * MB + 1),
            "unpacked size (a zip bomb)": zip_of({"records.json": listing, "records/pad.md": bytes(41 * MB)}),
            "one attachment": zip_of(
                {
                    "records.json": json.dumps([archived(attachments=[{"sha256": big_sha}])]),
                    f"attachments/{big_sha}": big_attachment,
                }
            ),
        }
        for name, data in cases.items():
            response = await small.post(IMPORT, files={"file": ("big.zip", data)}, headers=headers)
            assert response.status_code == 413, (name, response.text)
            assert_error(response, 413, "payload_too_large")

        # Sent in chunks without a Content-Length: refused while it arrives, not after.
        sent: list[int] = []

        async def chunked() -> AsyncIterator[bytes]:
            yield b'--cap\r\nContent-Disposition: form-data; name="file"; filename="big.zip"\r\n\r\nPK'
            for _ in range(40):
                sent.append(MB)
                yield bytes(MB)
            yield b"\r\n--cap--\r\n"

        multipart = {**headers, "content-type": "multipart/form-data; boundary=cap"}
        response = await small.post(IMPORT, content=chunked(), headers=multipart)
        assert "content-length" not in response.request.headers
        assert_error(response, 413, "payload_too_large")
        assert sum(sent) <= 12 * MB

        assert await records_stack.record_count() == count
        assert stored_files(records_stack) == files
