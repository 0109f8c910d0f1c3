"""The body guard (common/bodies.py) caps JSON and form bodies at `JILU_MAX_JSON_KB`; the two
routes that stream a multipart body under a cap of their own (attachment uploads, the import
zip) are left to it, so a file larger than that cap still goes through."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

from mobile_service.app.config import MobileSettings
from mobile_service.app.main import create_app as create_mobile_app
from tests.records.conftest import RECORDS, Account, RecordsStack
from tests.support import app_client

CAP_KB = 4


def incompressible_text(size: int) -> str:
    """`size` characters of hex that a zip cannot shrink below half."""
    return "".join(uuid.uuid4().hex for _ in range(size // 32 + 1))[:size]


async def test_uploads_and_imports_larger_than_the_json_cap_go_through(
    records_stack: RecordsStack, records_owner: Account, make_settings: Callable[..., Any], migrated_database_url: str
) -> None:
    settings = make_settings(MobileSettings, database_url=migrated_database_url, max_json_kb=CAP_KB)
    async with app_client(create_mobile_app(settings)) as small:
        headers = records_owner.headers
        record = await records_stack.create(small, records_owner)
        text = incompressible_text(16 * CAP_KB * 1024).encode()

        uploaded = await small.post(
            f"{RECORDS}/{record['id']}/attachments", files={"file": ("notes.txt", text)}, headers=headers
        )

        content = incompressible_text(16 * CAP_KB * 1024)
        listing = [{"id": str(uuid.uuid4()), "kind": "note", "content": content, "occurred_at": record["occurred_at"]}]
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
            zipped.writestr("records.json", json.dumps(listing))
        assert len(archive.getvalue()) > 2 * CAP_KB * 1024
        imported = await small.post(
            "/api/v1/import", files={"file": ("export.zip", archive.getvalue(), "application/zip")}, headers=headers
        )
        # Any other multipart body is capped: the relayed login form, say.
        padding = {"username": (None, "x"), "password": (None, "y" * (CAP_KB * 1024 + 1))}
        login = await small.post("/api/v1/auth/token", files=padding)

    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["size"] == len(text)
    assert imported.status_code == 200, imported.text
    assert login.status_code == 413, login.text
    assert login.json() == {"error": "payload_too_large", "detail": f"a form body may be at most {CAP_KB} KB"}
