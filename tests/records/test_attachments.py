"""Attachments: streamed uploads with a size cap, types from the bytes, thumbnails without
metadata, per-user dedupe and owner-only downloads, through mobile_service in process on
SQLite and PostgreSQL (when one answers) with the real test Redis.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from PIL import ExifTags, Image
from sqlalchemy import insert, select

from common.deps import service_state
from common.records.attachments import service as attachment_service
from common.records.attachments.routes import UPLOAD_RATE
from common.records.events import RECORD_EVENTS_STREAM
from common.records.models import Attachment, Record
from tests.records.attachment_support import (
    ELF,
    MB,
    MP3,
    PDF,
    PE,
    RECORDS,
    Account,
    MakeStack,
    Stack,
    bearer_url,
    ftyp,
    gps_exif,
    image_bytes,
    two_colour_jpeg,
    wav_bytes,
    without_links,
)
from tests.support import assert_error

# -- uploads and downloads ----------------------------------------------------------------

KINDS = [
    # name, bytes, content type sniffed, disposition, has a thumbnail
    ("photo.jpg", image_bytes("JPEG"), "image/jpeg", "inline", True),
    ("shot.png", image_bytes("PNG"), "image/png", "inline", True),
    ("paper.pdf", PDF, "application/pdf", "inline", False),
    ("notes.txt", "今天下午开会讨论预算 budget\n".encode(), "text/plain", "attachment", False),
    ("memo.mp3", MP3, "audio/mpeg", "inline", False),
    ("memo.wav", wav_bytes(), "audio/wav", "inline", False),
]


async def test_upload_and_download_every_kind(stack: Stack, owner: Account) -> None:
    record = await stack.record(owner)
    for filename, data, content_type, disposition, thumbnail in KINDS:
        # The client's claimed type is ignored either way.
        response = await stack.upload(owner, record["id"], data, filename, "application/x-whatever")
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == {
            "id",
            "content_type",
            "size",
            "sha256",
            "url",
            "thumbnail_url",
            "filename",
            "record_version",
            "extraction",
        }
        assert body["extraction"]["status"] == "pending"  # every kind here has text to read
        assert body["content_type"] == content_type
        assert body["size"] == len(data)
        assert body["sha256"] == hashlib.sha256(data).hexdigest()
        assert body["filename"] == filename
        assert body["url"].startswith(f"http://testserver/api/v1/files/{body['id']}/original?")
        if thumbnail:
            assert body["thumbnail_url"].startswith(f"http://testserver/api/v1/files/{body['id']}/thumb?")
        else:
            assert body["thumbnail_url"] is None

        # The bearer route and the signed URL (no token) send the same file the same way.
        for download in (
            await stack.api.get(bearer_url(body), headers=owner.headers),
            await stack.api.get(body["url"]),
        ):
            assert download.status_code == 200
            assert download.content == data
            assert download.headers["content-type"].split(";")[0] == content_type
            assert (
                download.headers["content-disposition"]
                == f"{disposition}; filename=\"{filename}\"; filename*=UTF-8''{filename}"
            )
            assert download.headers["x-content-type-options"] == "nosniff"
            assert download.headers["cache-control"].startswith("private")
            assert download.headers["etag"] == f'"{body["sha256"]}"'
        stored = stack.storage.path(owner.id, body["sha256"])
        assert stored.read_bytes() == data

        thumb = await stack.api.get(bearer_url(body), params={"thumb": 1}, headers=owner.headers)
        if thumbnail:
            assert thumb.status_code == 200
            assert thumb.headers["content-type"] == "image/jpeg"
            assert thumb.content.startswith(b"\xff\xd8\xff")
            assert (await stack.api.get(body["thumbnail_url"])).content == thumb.content
        else:
            assert_error(thumb, 404, "not_found")
    # Nothing is left in tmp/ once the uploads are in place.
    assert not [p for p in stack.files() if p.parent.name == "tmp"]


async def test_a_non_ascii_name_is_sent_rfc5987_encoded(stack: Stack, owner: Account) -> None:
    record = await stack.record(owner)
    body = await stack.uploaded(owner, record["id"], "会议纪要".encode(), "dir/会议 纪要;v2.txt")
    assert body["filename"] == "会议 纪要;v2.txt"
    download = await stack.api.get(bearer_url(body), headers=owner.headers)
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"__ ___v2.txt\"; filename*=UTF-8''%E4%BC%9A%E8%AE%AE%20%E7%BA%AA%E8%A6%81%3Bv2.txt"
    )
    assert download.headers["content-type"] == "text/plain; charset=utf-8"


async def test_an_upload_is_a_new_version_of_the_record(stack: Stack, owner: Account) -> None:
    record = await stack.record(owner)
    assert record["version"] == 1
    seq_before = await stack.scalar(select(Record.change_seq).where(Record.id == record["id"]))
    body = await stack.uploaded(owner, record["id"], image_bytes("PNG"), "a.png")

    current = (await stack.api.get(f"{RECORDS}/{record['id']}", headers=owner.headers)).json()
    assert current["version"] == 2
    assert [without_links(a) for a in current["attachments"]] == [without_links(body)]
    assert body["record_version"] == 2
    assert await stack.scalar(select(Record.change_seq).where(Record.id == record["id"])) > seq_before
    _, last_event = (await stack.redis.xrange(RECORD_EVENTS_STREAM))[-1]  # type: ignore[index]
    assert isinstance(last_event, dict)
    assert (last_event["type"], last_event["record_id"], last_event["version"]) == ("updated", record["id"], "2")
    # The record is still found by its words after the change (the index was rewritten).
    hits = (await stack.api.get("/api/v1/search", params={"q": "file"}, headers=owner.headers)).json()
    assert [hit["record"]["id"] for hit in hits["items"]] == [record["id"]]


async def test_the_same_bytes_twice_are_one_file_and_two_attachments(stack: Stack, owner: Account) -> None:
    first, second = await stack.record(owner, "one"), await stack.record(owner, "two")
    data = image_bytes("JPEG", (300, 200))
    a = await stack.uploaded(owner, first["id"], data, "a.jpg")
    b = await stack.uploaded(owner, second["id"], data, "b.jpg")
    assert a["id"] != b["id"]
    assert a["sha256"] == b["sha256"]
    assert await stack.attachment_rows(owner.id) == 2
    sha = a["sha256"]
    assert stack.files() == sorted([stack.storage.path(owner.id, sha), stack.storage.thumbnail_path(owner.id, sha)])
    for body in (a, b):
        assert (await stack.api.get(body["url"], headers=owner.headers)).content == data


# -- refusals -----------------------------------------------------------------------------


async def test_over_the_cap_is_413_and_nothing_stays_on_disk(make_stack: MakeStack) -> None:
    async with make_stack(max_upload_mb=1) as stack:
        owner = await stack.account("owner")
        record = await stack.record(owner)
        kept = await stack.uploaded(owner, record["id"], b"a small note that fits", "fits.txt")
        before = stack.files()

        # Declared up front: refused before a byte of the body is read.
        response = await stack.upload(owner, record["id"], b"x" * (2 * MB), "big.txt")
        assert_error(response, 413, "payload_too_large")

        # Not declared (chunked): counted while it streams, and refused part-way.
        boundary = "jilu-test-boundary"
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'.encode()
        chunks = [head] + [b"y" * (64 * 1024)] * 32 + [f"\r\n--{boundary}--\r\n".encode()]  # 2 MB of file
        sent = 0

        async def body() -> AsyncIterator[bytes]:
            nonlocal sent
            for chunk in chunks:
                sent += 1
                yield chunk

        response = await stack.api.post(
            f"{RECORDS}/{record['id']}/attachments",
            content=body(),
            headers={**owner.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert_error(response, 413, "payload_too_large")
        assert "content-length" not in response.request.headers
        assert sent < len(chunks)  # it stopped reading once past the cap

        assert stack.files() == before  # no new file, and tmp/ is empty
        assert not list((stack.uploads / "tmp").iterdir())
        current = (await stack.api.get(f"{RECORDS}/{record['id']}", headers=owner.headers)).json()
        assert current["version"] == 2
        assert [a["id"] for a in current["attachments"]] == [kept["id"]]


async def test_exactly_the_cap_is_accepted(make_stack: MakeStack) -> None:
    async with make_stack(max_upload_mb=1) as stack:
        owner = await stack.account("owner")
        record = await stack.record(owner)
        body = await stack.uploaded(owner, record["id"], b"z" * MB, "full.txt")
        assert body["size"] == MB


@pytest.mark.parametrize("payload", [ELF, PE], ids=["elf", "pe"])
async def test_an_executable_named_png_is_415(stack: Stack, owner: Account, payload: bytes) -> None:
    record = await stack.record(owner)
    response = await stack.upload(owner, record["id"], payload, "cute-cat.png", "image/png")
    assert_error(response, 415, "unsupported_media_type")
    assert stack.files() == []
    assert await stack.attachment_rows(owner.id) == 0
    assert (await stack.api.get(f"{RECORDS}/{record['id']}", headers=owner.headers)).json()["version"] == 1


async def test_no_file_is_422(stack: Stack, owner: Account) -> None:
    record = await stack.record(owner)
    url = f"{RECORDS}/{record['id']}/attachments"
    # Multipart without a `file` field.
    response = await stack.api.post(url, files={"photo": ("a.png", image_bytes("PNG"))}, headers=owner.headers)
    detail = assert_error(response, 422, "validation_error")
    assert detail[0]["field"] == "file"  # type: ignore[index]
    # Not multipart at all: the media type is wrong (415), naming the one that is taken.
    response = await stack.api.post(url, json={"file": "aGVsbG8="}, headers=owner.headers)
    assert "multipart/form-data" in assert_error(response, 415, "unsupported_media_type")  # type: ignore[operator]
    # An empty file.
    response = await stack.upload(owner, record["id"], b"", "empty.txt")
    assert_error(response, 422, "validation_error")
    # Two files in one request.
    files = [("file", ("a.txt", b"one")), ("file", ("b.txt", b"two"))]
    response = await stack.api.post(url, files=files, headers=owner.headers)
    assert_error(response, 422, "validation_error")
    assert stack.files() == []
    assert await stack.attachment_rows(owner.id) == 0


async def test_a_record_holds_at_most_50_attachments(stack: Stack, owner: Account) -> None:
    record = await stack.record(owner)
    body = await stack.uploaded(owner, record["id"], b"the first one", "1.txt")
    rows = [
        {
            "owner_id": owner.id,
            "record_id": record["id"],
            "content_type": "text/plain",
            "size": 13,
            "sha256": body["sha256"],
            "has_thumbnail": False,
            "created_at": datetime.now(UTC),
        }
        for _ in range(attachment_service.MAX_ATTACHMENTS_PER_RECORD - 1)
    ]
    async with service_state(stack.app).write_sessionmaker() as session, session.begin():
        await session.execute(insert(Attachment), rows)
    response = await stack.upload(owner, record["id"], b"one too many", "51.txt")
    assert_error(response, 409, "conflict")
    assert await stack.attachment_rows(owner.id) == attachment_service.MAX_ATTACHMENTS_PER_RECORD


async def test_uploads_are_rate_limited_per_user(stack: Stack, owner: Account, stranger: Account) -> None:
    record = await stack.record(owner)
    limiter = service_state(stack.app).rate_limiter
    amount = int(UPLOAD_RATE.split("/")[0])
    for _ in range(amount):
        await limiter.check(UPLOAD_RATE, "upload", owner.id)
    response = await stack.upload(owner, record["id"], b"one more", "x.txt")
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) >= 1
    # Another user is not held back by it.
    theirs = await stack.record(stranger)
    await stack.uploaded(stranger, theirs["id"], b"mine", "y.txt")


# -- thumbnails ---------------------------------------------------------------------------


async def thumbnail_of(stack: Stack, owner: Account, data: bytes, filename: str) -> tuple[Image.Image, bytes]:
    """Upload `data`; the thumbnail served for it, decoded and raw."""
    record = await stack.record(owner)
    body = await stack.uploaded(owner, record["id"], data, filename)
    assert body["thumbnail_url"]
    response = await stack.api.get(body["thumbnail_url"], headers=owner.headers)
    assert response.status_code == 200
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image, response.content


async def test_a_thumbnail_is_at_most_512_on_its_longest_side(stack: Stack, owner: Account) -> None:
    thumb, _ = await thumbnail_of(stack, owner, image_bytes("PNG", (2000, 1000)), "wide.png")
    assert thumb.format == "JPEG"
    assert thumb.size == (512, 256)
    thumb, _ = await thumbnail_of(stack, owner, image_bytes("JPEG", (900, 1800)), "tall.jpg")
    assert thumb.size == (256, 512)
    # Small images are not blown up.
    thumb, _ = await thumbnail_of(stack, owner, image_bytes("GIF", (100, 40)), "small.gif")
    assert thumb.size == (100, 40)


async def test_a_thumbnail_is_turned_the_way_the_camera_was_held(stack: Stack, owner: Account) -> None:
    # Stored landscape, left red and right blue; orientation 6 says "turn 90° clockwise".
    thumb, _ = await thumbnail_of(stack, owner, two_colour_jpeg((1000, 500), orientation=6), "portrait.jpg")
    assert thumb.size == (256, 512)
    red, blue = thumb.getpixel((128, 60)), thumb.getpixel((128, 450))
    assert isinstance(red, tuple) and isinstance(blue, tuple)
    assert red[0] > 200 and red[2] < 60, red  # the red half is now on top
    assert blue[2] > 200 and blue[0] < 60, blue
    assert not thumb.getexif()  # and no orientation tag left to turn it twice


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
async def test_a_thumbnail_carries_no_location(stack: Stack, owner: Account, fmt: str) -> None:
    data = image_bytes(fmt, (800, 600), exif=gps_exif())
    original = Image.open(io.BytesIO(data))
    assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the upload does carry a position
    thumb, raw = await thumbnail_of(stack, owner, data, f"trip.{fmt.lower()}")
    assert not thumb.getexif()
    assert not thumb.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert "exif" not in thumb.info and "xmp" not in thumb.info and "icc_profile" not in thumb.info
    assert b"Exif" not in raw and b"Jilu Test Camera" not in raw


async def test_formats_pillow_cannot_open_get_no_thumbnail(stack: Stack, owner: Account) -> None:
    record = await stack.record(owner)
    heic = ftyp(b"heic", b"mif1", b"heic") + secrets.token_bytes(2000)
    body = await stack.uploaded(owner, record["id"], heic, "IMG_0001.HEIC")
    assert body["content_type"] == "image/heic"
    assert body["thumbnail_url"] is None
    assert (await stack.api.get(body["url"], headers=owner.headers)).content == heic


# -- isolation ----------------------------------------------------------------------------


async def test_another_user_reaches_none_of_it(stack: Stack, owner: Account, stranger: Account) -> None:
    record = await stack.record(owner)
    data = image_bytes("JPEG", (640, 480))
    body = await stack.uploaded(owner, record["id"], data, "private.jpg")
    url = bearer_url(body)

    assert_error(await stack.api.get(url, headers=stranger.headers), 404, "not_found")
    assert_error(await stack.api.get(url, params={"thumb": 1}, headers=stranger.headers), 404, "not_found")
    assert_error(await stack.api.delete(url, headers=stranger.headers), 404, "not_found")
    response = await stack.upload(stranger, record["id"], b"planted", "x.txt")
    assert_error(response, 404, "not_found")
    assert_error(await stack.api.post(f"{RECORDS}/{record['id']}/purge", headers=stranger.headers), 404, "not_found")
    # Without a token at all.
    assert_error(await stack.api.get(url), 401, "unauthorized")

    # The same bytes uploaded by the stranger are the stranger's own file, not a link to the owner's.
    theirs = await stack.record(stranger)
    their_body = await stack.uploaded(stranger, theirs["id"], data, "mine.jpg")
    assert stack.storage.path(stranger.id, their_body["sha256"]).is_file()
    assert stack.storage.path(owner.id, body["sha256"]).is_file()
    assert_error(await stack.api.get(url, headers=stranger.headers), 404, "not_found")

    # Everything of the owner's is untouched.
    assert (await stack.api.get(url, headers=owner.headers)).content == data
    current = (await stack.api.get(f"{RECORDS}/{record['id']}", headers=owner.headers)).json()
    assert current["version"] == 2
    assert [a["id"] for a in current["attachments"]] == [body["id"]]


async def test_attachments_of_a_deleted_record_are_gone(stack: Stack, owner: Account) -> None:
    record = await stack.record(owner)
    body = await stack.uploaded(owner, record["id"], image_bytes("PNG"), "a.png")
    assert (await stack.api.delete(f"{RECORDS}/{record['id']}", headers=owner.headers)).status_code == 204
    url = bearer_url(body)
    assert_error(await stack.api.get(url, headers=owner.headers), 404, "not_found")
    assert_error(await stack.api.get(url, params={"thumb": 1}, headers=owner.headers), 404, "not_found")
    assert_error(await stack.api.delete(url, headers=owner.headers), 404, "not_found")
    # The signed URLs handed out while the record was live stop working too.
    assert_error(await stack.api.get(body["url"]), 404, "not_found")
    assert_error(await stack.api.get(body["thumbnail_url"]), 404, "not_found")
    assert_error(await stack.upload(owner, record["id"], b"late", "late.txt"), 404, "not_found")
