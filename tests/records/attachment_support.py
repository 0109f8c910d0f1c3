"""What the attachment tests share: files worth uploading, and the apps they run against.

`open_stack` builds user_service (to register and log in) and mobile_service on one migrated
database, the real test Redis and a temporary data dir whose `uploads/` the tests inspect.
"""

from __future__ import annotations

import io
import secrets
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from PIL import ExifTags, Image
from redis.asyncio import Redis
from sqlalchemy import func, select

from common.deps import service_state
from common.records.attachments.storage import AttachmentStorage
from common.records.models import Attachment
from mobile_service.app.config import MobileSettings
from mobile_service.app.main import create_app as create_mobile_app
from tests.support import app_client
from user_service.app.config import UserSettings
from user_service.app.main import create_app as create_user_app

PASSWORD = "plum-Lantern-42"
RECORDS = "/api/v1/records"
MB = 1024 * 1024


# -- files worth uploading ----------------------------------------------------------------


def image_bytes(fmt: str, size: tuple[int, int] = (64, 48), *, exif: Image.Exif | None = None, **kw: Any) -> bytes:
    image = Image.new("RGB", size, (200, 30, 30))
    out = io.BytesIO()
    if exif is not None:
        kw["exif"] = exif
    image.save(out, fmt, **kw)
    return out.getvalue()


def two_colour_jpeg(size: tuple[int, int], orientation: int) -> bytes:
    """Left half red, right half blue, with an EXIF orientation tag."""
    width, height = size
    image = Image.new("RGB", size, (255, 0, 0))
    image.paste((0, 0, 255), (width // 2, 0, width, height))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=95)
    return out.getvalue()


def gps_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Jilu Test Camera"
    exif[ExifTags.Base.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (39.0, 54.0, 27.0),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (116.0, 23.0, 50.0),
    }
    return exif


def wav_bytes() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(b"\x00\x01" * 800)
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"  # noqa: E501
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(413)
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00" + secrets.token_bytes(6000)
PE = b"MZ\x90\x00\x03\x00\x00\x00" + secrets.token_bytes(6000)


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    """The start of an ISO media file (MP4, M4A, HEIC) with those brands."""
    body = major + b"\x00\x00\x02\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + bytes(64)


def bearer_url(attachment: dict[str, Any]) -> str:
    """The attachment's bearer route (its `url` is a signed link that needs no token)."""
    return f"/api/v1/attachments/{attachment['id']}"


def without_links(attachment: dict[str, Any]) -> dict[str, Any]:
    """An attachment's fields bar its signed URLs (whose expiry moves every few minutes) and
    an upload's `record_version`."""
    return {k: v for k, v in attachment.items() if k not in ("url", "thumbnail_url", "record_version")}


# -- the apps -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    id: str
    headers: dict[str, str]


class Stack:
    """user_service and mobile_service on one database, Redis and data dir."""

    def __init__(self, mobile_app: FastAPI, users: httpx.AsyncClient, mobile: httpx.AsyncClient, redis: Redis) -> None:
        self.app = mobile_app
        self.users = users
        self.api = mobile
        self.redis = redis
        self.uploads = Path(service_state(mobile_app).settings.data_dir) / "uploads"
        self.storage = AttachmentStorage(service_state(mobile_app).settings.data_dir)

    async def account(self, username: str) -> Account:
        response = await self.users.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD})
        assert response.status_code == 201, response.text
        user_id = response.json()["id"]
        response = await self.users.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return Account(user_id, {"Authorization": f"Bearer {response.json()['access_token']}"})

    async def record(self, account: Account, content: str = "with a file") -> dict[str, Any]:
        response = await self.api.post(RECORDS, json={"content": content, "tags": ["相册"]}, headers=account.headers)
        assert response.status_code == 201, response.text
        return response.json()

    async def upload(
        self, account: Account, record_id: str, data: bytes, filename: str = "file.bin", content_type: str = ""
    ) -> httpx.Response:
        files = {"file": (filename, data, content_type or "application/octet-stream")}
        return await self.api.post(f"{RECORDS}/{record_id}/attachments", files=files, headers=account.headers)

    async def uploaded(self, account: Account, record_id: str, data: bytes, filename: str = "f") -> dict[str, Any]:
        response = await self.upload(account, record_id, data, filename)
        assert response.status_code == 201, response.text
        return response.json()

    def files(self) -> list[Path]:
        """Every file under uploads/ (tmp/ included)."""
        return sorted(p for p in self.uploads.rglob("*") if p.is_file()) if self.uploads.exists() else []

    async def scalar(self, statement: Any) -> Any:
        async with service_state(self.app).sessionmaker() as session:
            return (await session.execute(statement)).scalar()

    async def execute(self, statement: Any) -> None:
        async with service_state(self.app).write_sessionmaker() as session, session.begin():
            await session.execute(statement)

    async def attachment_rows(self, owner_id: str) -> int:
        return int(
            await self.scalar(select(func.count()).select_from(Attachment).where(Attachment.owner_id == owner_id))
        )


@asynccontextmanager
async def open_stack(
    make_settings: Callable[..., Any], database_url: str, redis: Redis, **overrides: Any
) -> AsyncIterator[Stack]:
    """The two apps running; `overrides` are mobile_service settings (e.g. `max_upload_mb`)."""
    user_app = create_user_app(make_settings(UserSettings, database_url=database_url))
    mobile_app = create_mobile_app(make_settings(MobileSettings, database_url=database_url, **overrides))
    async with app_client(user_app) as users, app_client(mobile_app) as mobile:
        yield Stack(mobile_app, users, mobile, redis)


# `async with make_stack(**mobile_setting_overrides) as stack:` (the test modules' fixture).
MakeStack = Callable[..., Any]
