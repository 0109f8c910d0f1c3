"""Bodies on the record routes (issue 10, "Bodies"): server-owned fields are read-only, the
form and multipart routes keep their encodings, and a raw Chinese query reaches the search."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from mobile_service.app.config import MobileSettings
from mobile_service.app.main import create_app as create_mobile_app
from tests.common.test_bodies import parse_answer, raw_exchange
from tests.records.conftest import PASSWORD, RECORDS, Account, RecordsStack
from tests.support import assert_problems, serve_app


async def test_form_and_multipart_routes_keep_working(records_stack: RecordsStack, records_owner: Account) -> None:
    # The login form (its route reads the body itself), an upload and an import (multipart).
    users, mobile = records_stack.clients["user"], records_stack.mobile
    login = await users.post("/api/v1/auth/token", data={"username": "owner", "password": PASSWORD})
    assert login.status_code == 200, login.text
    record = (await mobile.post(RECORDS, json={"content": "x"}, headers=records_owner.headers)).json()
    upload = await mobile.post(
        f"{RECORDS}/{record['id']}/attachments",
        files={"file": ("a.txt", b"hello", "text/plain")},
        headers=records_owner.headers,
    )
    assert upload.status_code == 201, upload.text
    imported = await mobile.post(
        "/api/v1/import", files={"file": ("e.zip", b"not a zip", "application/zip")}, headers=records_owner.headers
    )
    assert imported.status_code in (400, 422), imported.text  # the route's own verdict on the zip, not 415


async def test_the_search_takes_a_raw_chinese_query(
    records_stack: RecordsStack, records_owner: Account, make_settings: Callable[..., Any], migrated_database_url: str
) -> None:
    await records_stack.create(records_stack.mobile, records_owner, content="今天在西湖边写中文日记")
    mobile = create_mobile_app(make_settings(MobileSettings, database_url=migrated_database_url))
    async with serve_app(mobile) as url:
        port = int(url.rsplit(":", 1)[1])
        head = (
            f"GET /api/v1/search?q=中文 HTTP/1.1\r\nHost: jilu\r\nConnection: close\r\n"
            f"Authorization: {records_owner.headers['Authorization']}\r\n\r\n"
        ).encode()
        answer = await asyncio.to_thread(raw_exchange, port, head)
    status, _, body = parse_answer(answer)
    assert status == 200, answer
    hits = json.loads(body)
    items = hits["items"] if isinstance(hits, dict) else hits
    assert [hit["record"]["content"] for hit in items] == ["今天在西湖边写中文日记"]


async def test_server_owned_fields_on_create_are_read_only(records_stack: RecordsStack, records_owner: Account) -> None:
    body = {"content": "x", "version": 3, "owner_id": "someone", "created_at": "2026-01-01T00:00:00Z", "colour": "red"}
    response = await records_stack.mobile.post(RECORDS, json=body, headers=records_owner.headers)
    detail = assert_problems(response)
    assert sorted(detail, key=lambda p: p["field"]) == [
        {"field": "body.colour", "message": "Extra inputs are not permitted", "type": "extra_forbidden"},
        {"field": "body.created_at", "message": "created_at is read-only (set by the server)", "type": "read_only"},
        {"field": "body.owner_id", "message": "owner_id is read-only (set by the server)", "type": "read_only"},
        {"field": "body.version", "message": "version is read-only (set by the server)", "type": "read_only"},
    ]
    assert await records_stack.record_count() == 0


async def test_server_owned_fields_on_update_are_read_only(records_stack: RecordsStack, records_owner: Account) -> None:
    record = await records_stack.create(records_stack.mobile, records_owner, content="before")
    path = f"{RECORDS}/{record['id']}"
    refused = await records_stack.mobile.patch(
        path,
        json={"version": 1, "content": "after", "id": "x", "shared": True, "ai": {}},
        headers=records_owner.headers,
    )
    detail = assert_problems(refused)
    assert sorted((p["field"], p["message"], p["type"]) for p in detail) == [
        ("body.ai", "ai is read-only (set by the server)", "read_only"),
        ("body.id", "id is read-only (set by the server)", "read_only"),
        ("body.shared", "shared is read-only (set by the server)", "read_only"),
    ]
    # `version` is the version the edit is based on: taken, not refused.
    accepted = await records_stack.mobile.patch(
        path, json={"version": 1, "content": "after"}, headers=records_owner.headers
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["version"] == 2
