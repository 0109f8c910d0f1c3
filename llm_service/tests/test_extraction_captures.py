"""Voice memos and links understood end to end (issue 12), through the real servers
(`chat_stack`: llm_service's extraction workers, mobile_service, web_service; one database,
SQLite and PostgreSQL when one answers; the real Redis queue):

- offline, a voice memo is `skipped` with a reason and its length, never `failed`;
- with a provider that has speech-to-text (the fake one behind the `openai` preset, its base
  URL pointed at the fake), the transcript is stored, shown and searchable, and the provider
  is sent the audio with the language hint and a neutral file name, never the user's;
- an opted-out record's memo never reaches the provider;
- a link record's page (a real HTTP server on 127.0.0.1, allowed by `link_allowed_hosts`) is
  read, titled and searchable; a redirect to the cloud metadata address is refused.

Another user's attachment on `POST /attachments/{id}/extract` is covered in
`tests/records/test_extraction_state.py`.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from PIL import Image

from common.queue.workers import ORPHANED_AFTER_MS
from llm_service.tests.chat_stack import ANALYSIS, ChatStack, chat_stack, remote
from llm_service.tests.fake_provider import FakeProvider, Reply
from llm_service.tests.test_extraction_audio import silence_wav
from llm_service.tests.test_extraction_flow import read_when_done, upload
from llm_service.tests.test_extraction_links import Server

SECONDS = 20  # the longest any reading here may take; each is well under a second
TRANSCRIPT = "明天上午十点去机场接妈妈"
USER_FILE_NAME = "妈妈航班 备忘.wav"
METADATA_URL = "http://169.254.169.254/latest/meta-data/"

PAGE_TITLE = "阳台上的小菜园"
SITE_NAME = "城市生活笔记"
ONLY_IN_PAGE_TEXT = "薄荷"  # neither in the title, the site name, nor the record's URL
PAGE_SENTENCES = (
    "今年春天我在阳台上种了几盆番茄和薄荷，每天早上出门前浇一次水。",
    "番茄长得很慢，可是薄荷一个月就铺满了整个花盆，夏天泡茶正好用得上。",
    "住在城市里也可以自己种菜，只要找一个阳光充足的角落，坚持照顾就会有收获。",
)


def garden_page() -> bytes:
    paragraphs = "".join(f"<p>{sentence * 2}</p>" for sentence in PAGE_SENTENCES)
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>{PAGE_TITLE}</title>
<meta property="og:site_name" content="{SITE_NAME}">
<meta property="og:image" content="/cover.png">
</head><body><article><h1>{PAGE_TITLE}</h1>{paragraphs}</article></body></html>""".encode()


def cover_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (120, 80), (40, 140, 60)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def site() -> Iterator[Server]:
    """A web site on 127.0.0.1 in a thread: the garden page, and a redirect to the metadata address."""
    server = Server()
    server.routes["/garden"] = lambda h: h.send_body(200, garden_page(), "text/html; charset=utf-8")
    server.routes["/moved"] = lambda h: h.redirect(302, METADATA_URL)
    server.routes["/cover.png"] = lambda h: h.send_body(200, cover_png(), "image/png")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def stack(make_settings: Callable[..., Any], migrated_database_url: str, redis: Any) -> Callable[..., Any]:
    return partial(chat_stack, make_settings, migrated_database_url, scheduler_interval_seconds=0)


def transcribing(fake: FakeProvider) -> dict[str, Any]:
    """llm_service settings whose provider is the `openai` preset (which has speech-to-text)
    with its base URL pointed at the fake provider; the analyses it asks for get valid JSON."""
    fake.default_reply = Reply(text=ANALYSIS)
    return remote(fake, llm_provider="openai")


async def voice_memo(chat: ChatStack, username: str, audio: bytes, **fields: Any) -> tuple[str, str]:
    """A voice record with `audio` uploaded under the user's own file name: (record id, attachment id)."""
    record = await chat.record(username, kind="voice", content="", **fields)
    attached = await upload(chat, username, record["id"], audio, USER_FILE_NAME)
    assert attached["content_type"] == "audio/wav"
    assert attached["extraction"]["status"] == "pending"
    return record["id"], attached["id"]


async def memo_extraction(chat: ChatStack, username: str, record_id: str) -> dict[str, Any]:
    read = await read_when_done(chat, username, record_id, seconds=SECONDS)
    return dict(read["attachments"][0]["extraction"])


async def link_when_read(chat: ChatStack, username: str, record_id: str) -> dict[str, Any]:
    """The link record once its page is no longer waiting to be read."""
    deadline = time.monotonic() + SECONDS
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await chat.mobile.get(f"/api/v1/records/{record_id}", headers=chat.headers[username])
        record = response.json()
        if record["extraction"]["status"] not in ("pending", "running"):
            return record
        await asyncio.sleep(0.1)
    raise AssertionError(f"the link was still not read: {record.get('extraction')}")


async def search(chat: ChatStack, username: str, words: str) -> list[dict[str, Any]]:
    found = await chat.web.get("/api/v1/search", params={"q": words}, headers=chat.headers[username])
    assert found.status_code == 200, found.text
    return list(found.json()["items"])


# -- voice memos ------------------------------------------------------------------------------


async def test_offline_a_voice_memo_is_skipped_with_a_reason_and_its_length(stack: Any) -> None:
    async with stack() as chat:
        started = time.monotonic()
        record_id, _ = await voice_memo(chat, "alice", silence_wav(1.5))
        extraction = await memo_extraction(chat, "alice", record_id)

        assert extraction["status"] == "skipped", extraction
        assert extraction["error"] == "transcription needs a provider with speech-to-text"
        assert extraction["duration_seconds"] == 1.5
        # Read at once: a job that reaches a worker before its upload commits (PostgreSQL) is
        # looked at again within a moment, not redelivered after the orphan window.
        assert time.monotonic() - started < ORPHANED_AFTER_MS / 1000


async def test_a_voice_memo_is_transcribed_shown_and_searchable(stack: Any, fake: FakeProvider) -> None:
    fake.script_transcriptions(Reply(text=TRANSCRIPT))
    audio = silence_wav(1.5)
    async with stack(**transcribing(fake)) as chat:
        record_id, attachment_id = await voice_memo(chat, "alice", audio)
        extraction = await memo_extraction(chat, "alice", record_id)

        assert extraction["status"] == "done", extraction
        assert extraction["engine"] == "transcription:gpt-4o-mini-transcribe"
        assert extraction["duration_seconds"] == 1.5
        shown = await chat.mobile.get(f"/api/v1/attachments/{attachment_id}/extraction", headers=chat.headers["alice"])
        assert shown.status_code == 200, shown.text
        assert shown.json()["text"] == TRANSCRIPT

        hits = await search(chat, "alice", "机场")
        assert [hit["record"]["id"] for hit in hits] == [record_id]
        assert hits[0]["matched_in"] == "attachment" and hits[0]["attachment_id"] == attachment_id
        assert await search(chat, "bob", "机场") == []

        [sent] = fake.transcription_requests
        assert sent.form["language"] == "zh"
        assert sent.form["model"] == "gpt-4o-mini-transcribe"
        assert sent.upload is not None and sent.upload.filename == "voice-memo.wav"
        assert sent.upload.size == len(audio)
        assert not any("妈妈航班" in value for value in sent.form.values())


async def test_an_opted_out_records_voice_memo_never_reaches_the_provider(stack: Any, fake: FakeProvider) -> None:
    kept, shared = silence_wav(1.5), silence_wav(2.0)
    async with stack(**transcribing(fake)) as chat:
        private_id, _ = await voice_memo(chat, "alice", kept, ai_opt_out=True)
        # A memo of a record that did not opt out, read by the same workers: the provider is
        # reachable and transcribes, so the first one's silence is the opt-out's doing.
        shared_id, _ = await voice_memo(chat, "alice", shared)
        private = await memo_extraction(chat, "alice", private_id)
        assert (await memo_extraction(chat, "alice", shared_id))["status"] == "done"

        assert private["status"] == "skipped", private
        assert private["error"] == "this record is kept away from AI providers, and speech needs one"
        assert private["duration_seconds"] == 1.5
        [sent] = fake.transcription_requests
        assert sent.upload is not None and sent.upload.size == len(shared)


# -- links ------------------------------------------------------------------------------------


async def test_a_link_records_page_is_read_titled_and_searchable(stack: Any, site: Server) -> None:
    site.seen.clear()
    async with stack(link_allowed_hosts=[site.host_port], link_timeout_seconds=5) as chat:
        record = await chat.record("alice", kind="link", content=f"值得一看 {site.url('/garden')}")
        assert record["extraction"]["status"] == "pending"
        read = await link_when_read(chat, "alice", record["id"])

        extraction = read["extraction"]
        assert extraction["status"] == "done", extraction
        assert extraction["engine"] == "trafilatura"
        assert (extraction["title"], extraction["site_name"]) == (PAGE_TITLE, SITE_NAME)
        text = await chat.mobile.get(f"/api/v1/records/{record['id']}/extraction", headers=chat.headers["alice"])
        assert PAGE_SENTENCES[1] in text.json()["text"]

        hits = await search(chat, "alice", ONLY_IN_PAGE_TEXT)
        assert [hit["record"]["id"] for hit in hits] == [record["id"]]
        assert hits[0]["matched_in"] == "link" and hits[0]["attachment_id"] is None
        assert await search(chat, "bob", ONLY_IN_PAGE_TEXT) == []
        # The page's preview image is stored as an attachment, through the upload's checks.
        for _ in range(80):
            shown = (await chat.mobile.get(f"/api/v1/records/{record['id']}", headers=chat.headers["alice"])).json()
            if shown["attachments"]:
                break
            await asyncio.sleep(0.25)
        assert [(a["content_type"], a["filename"]) for a in shown["attachments"]] == [("image/png", "preview")]
        assert shown["attachments"][0]["thumbnail_url"]
        assert site.paths() == ["/garden", "/cover.png"]


async def test_a_redirect_to_the_metadata_address_is_skipped_not_followed(stack: Any, site: Server) -> None:
    site.seen.clear()
    async with stack(link_allowed_hosts=[site.host_port], link_timeout_seconds=5) as chat:
        record = await chat.record("alice", kind="link", content=site.url("/moved"))
        read = await link_when_read(chat, "alice", record["id"])

        extraction = read["extraction"]
        assert extraction["status"] == "skipped", extraction
        assert extraction["error"] == "the link's address is not allowed"
        # Refused once, before any connection to the metadata address, and not retried.
        assert site.paths() == ["/moved"]
