"""A capture understood end to end (issue 12): a screenshot uploaded through mobile_service is
read by llm_service's extraction workers (real OCR, the real Redis queue), becomes searchable
by words only its pixels hold, and the offline assistant cites it; a job whose worker dies
mid-reading is finished once by another. llm_service, mobile_service and web_service are
real servers on one database (SQLite, and PostgreSQL when one answers)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from PIL import Image

from llm_service.tests.chat_stack import ANALYSIS, ChatStack, chat_stack, remote
from llm_service.tests.fake_provider import FakeProvider, Reply
from llm_service.tests.text_images import NEEDS_FONT, cjk_font_path, draw_lines, encoded

FONT = cjk_font_path()
pytestmark = pytest.mark.skipif(FONT is None, reason=NEEDS_FONT)

MEETING_LINES = ("会议改到周五下午三点", "meeting moved to Friday 3pm")


def screenshot() -> bytes:
    assert FONT is not None
    lines = [(MEETING_LINES[0], (40, 60)), (MEETING_LINES[1], (40, 160))]
    return encoded(draw_lines(FONT, lines, (900, 260), font_size=44))


@pytest.fixture
def stack(make_settings: Callable[..., Any], migrated_database_url: str, redis: Any) -> Callable[..., Any]:
    return partial(chat_stack, make_settings, migrated_database_url, scheduler_interval_seconds=0)


async def upload(chat: ChatStack, username: str, record_id: str, data: bytes, filename: str) -> dict[str, Any]:
    response = await chat.mobile.post(
        f"/api/v1/records/{record_id}/attachments",
        headers=chat.headers[username],
        files={"file": (filename, data, "application/octet-stream")},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def read_when_done(chat: ChatStack, username: str, record_id: str, *, seconds: float = 90) -> dict[str, Any]:
    """The record once none of its attachments is waiting to be read."""
    record: dict[str, Any] = {}
    for _ in range(int(seconds / 0.25)):
        response = await chat.mobile.get(f"/api/v1/records/{record_id}", headers=chat.headers[username])
        record = response.json()
        states = [a["extraction"]["status"] for a in record["attachments"]]
        if states and all(state not in ("pending", "running") for state in states):
            return record
        await asyncio.sleep(0.25)
    raise AssertionError(f"still not read: {record.get('attachments')}")


async def test_a_chinese_screenshot_becomes_searchable_and_the_assistant_cites_it(stack: Any) -> None:
    async with stack() as chat:
        record = await chat.record("alice", kind="screenshot", content="")
        await chat.record("alice", content="周末去公园散步。")
        attached = await upload(chat, "alice", record["id"], screenshot(), "IMG_0412.png")
        assert attached["extraction"]["status"] == "pending"

        read = await read_when_done(chat, "alice", record["id"])
        extraction = read["attachments"][0]["extraction"]
        assert extraction["status"] == "done" and extraction["engine"] == "rapidocr", extraction
        text = (
            await chat.mobile.get(f"/api/v1/attachments/{attached['id']}/extraction", headers=chat.headers["alice"])
        ).json()
        assert "周五" in text["text"] and "Friday" in text["text"]

        for word in ("周五", "Friday"):
            found = await chat.web.get("/api/v1/search", params={"q": word}, headers=chat.headers["alice"])
            hits = found.json()["items"]
            assert [hit["record"]["id"] for hit in hits] == [record["id"]], word
            assert hits[0]["matched_in"] == "attachment" and hits[0]["attachment_id"] == attached["id"]
        # Nobody else finds it.
        theirs = await chat.mobile.get("/api/v1/search", params={"q": "周五"}, headers=chat.headers["bob"])
        assert theirs.json()["items"] == []

        conversation = await chat.conversation("alice")
        answer = await chat.ask("alice", conversation, "会议改到什么时候了？")
        assert answer.status_code == 201, answer.text
        assert answer.json()["citations"] == [record["id"]]
        assert "周五" in answer.json()["content"]


async def test_a_photo_with_no_text_is_skipped_not_failed(stack: Any) -> None:
    async with stack() as chat:
        record = await chat.record("alice", kind="photo", content="")
        sky = Image.linear_gradient("L").convert("RGB").resize((640, 480))
        await upload(chat, "alice", record["id"], encoded(sky, "JPEG"), "sky.jpg")
        read = await read_when_done(chat, "alice", record["id"])
        extraction = read["attachments"][0]["extraction"]
        assert extraction["status"] == "skipped" and extraction["error"], extraction


async def test_a_provider_that_sees_images_is_shown_the_screenshot_and_its_text(
    make_settings: Callable[..., Any], migrated_database_url: str, redis: Any, fake: FakeProvider
) -> None:
    """With a vision model the screenshot is analysed from the picture (a JPEG data URL, no
    metadata) and the text OCR read in it; an opted-out record's picture is never sent."""
    fake.default_reply = Reply(text=ANALYSIS)
    settings = remote(fake, llm_model="llava:13b", scheduler_interval_seconds=0)
    async with chat_stack(make_settings, migrated_database_url, **settings) as chat:
        private = await chat.record("alice", kind="screenshot", content="", ai_opt_out=True)
        await upload(chat, "alice", private["id"], screenshot(), "private.png")
        record = await chat.record("alice", kind="screenshot", content="")
        await upload(chat, "alice", record["id"], screenshot(), "shot.png")
        await read_when_done(chat, "alice", record["id"])
        await read_when_done(chat, "alice", private["id"])
        for _ in range(240):  # the analysis owed once the text was read
            seen = [r for r in fake.chat_requests if "image_url" in json.dumps(r.json)]
            if any("周五" in json.dumps(r.json, ensure_ascii=False) for r in seen):
                break
            await asyncio.sleep(0.25)
        else:
            raise AssertionError("no analysis request carried the screenshot and its text")
        request = next(r for r in seen if "周五" in json.dumps(r.json, ensure_ascii=False))
        parts = [part for message in request.json["messages"] for part in _parts(message)]
        images = [part["image_url"]["url"] for part in parts if part.get("type") == "image_url"]
        assert len(images) == 1 and images[0].startswith("data:image/jpeg;base64,")
        jpeg = base64.b64decode(images[0].split(",", 1)[1])
        assert Image.open(io.BytesIO(jpeg)).getexif() == {}  # no metadata leaves the machine
        # Nothing of the opted-out record reached the provider: neither its picture nor its text.
        assert len([r for r in fake.chat_requests if "image_url" in json.dumps(r.json)]) == len(seen)
        assert all(private["id"] not in json.dumps(r.json) for r in fake.requests)


def _parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return content if isinstance(content, list) else []
