"""A screenshot being read when llm_service is killed (SIGKILL, mid-reading) is read after the
launcher restarts it, and stored once; the killed service's OCR worker does not live on. Real
launcher, real processes, real OCR: nothing is faked.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from PIL import Image, ImageDraw, ImageFont, features
from redis import Redis

from common.cache import create_redis
from common.queue import QueueStatus
from common.records.events import RECORD_EVENTS_STREAM
from common.records.extraction import extraction_queue
from llm_service.tests.text_images import encoded
from tests.e2e.stack import e2e_stack
from tests.harness import Launcher, pid_gone
from tests.support import signed_up, wait_until

pytestmark = pytest.mark.e2e

CODE_WORDS = "pelican harbour"
# Lines to read, so the reading lasts a few seconds after the OCR worker has loaded its models.
FILLER = (
    "Meeting notes for the quarterly review",
    "Agenda items and budget figures",
    "Call the printer about brochures",
    "Lunch with the design team at noon",
)
LINES = 20
# Bounds on waiting only (a loaded machine is slow), not timing assertions.
RUNNING_WITHIN = 30.0  # the upload's job claimed by the worker
OCR_WORKER_WITHIN = 20.0  # its OCR worker process started
CHILDREN_GONE_WITHIN = 10.0
RESTARTED_WITHIN = 30.0
READ_WITHIN = 60.0  # the orphan window (5 s), a new OCR worker and the reading


def screenshot() -> bytes:
    """A phone-wide screenshot of Latin text, drawn in the FreeType font Pillow ships (no font
    file needed), with `CODE_WORDS` on one of its lines."""
    font = ImageFont.load_default(size=40)
    image = Image.new("RGB", (1080, 80 + LINES * 58), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for i in range(LINES):
        text = f"Code word: {CODE_WORDS}" if i == LINES // 2 else f"{FILLER[i % len(FILLER)]} {i}"
        draw.text((40, 40 + i * 58), text, font=font, fill=(20, 20, 20))
    return encoded(image)


def ocr_workers(service: psutil.Process) -> list[psutil.Process]:
    """The OCR pool's worker processes under `service` (spawned by multiprocessing)."""
    found = []
    for child in service.children(recursive=True):
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def command_lines(processes: list[psutil.Process]) -> dict[psutil.Process, str]:
    """Each process with its command line (for a failure's message: it may be gone by then)."""
    found = {}
    for process in processes:
        try:
            found[process] = " ".join(process.cmdline())
        except psutil.Error:
            continue
    return found


def reading_logged(launcher: Launcher, attachment_id: str) -> list[str]:
    """llm_service's log lines saying it finished reading the attachment (worker.py)."""
    return [line for line in launcher.service_lines("llm") if f"read attachment {attachment_id} with" in line]


def queue_status(redis_url: str) -> QueueStatus:
    """The extraction queue's numbers now."""

    async def read() -> QueueStatus:
        redis = create_redis(redis_url)
        try:
            return await extraction_queue(redis).status()
        finally:
            await redis.aclose()

    return asyncio.run(read())


def restarted_llm(launcher: Launcher, killed: int) -> psutil.Process | None:
    """llm_service's process once the launcher started one after the `killed` pid."""
    service = launcher.service_processes().get("llm")
    return service if service is not None and service.pid != killed else None


@pytest.mark.skipif(not features.check("freetype2"), reason="Pillow was built without FreeType: it cannot draw text")
def test_a_screenshot_being_read_when_llm_service_is_killed_is_read_once_after_the_restart(tmp_path: Path) -> None:
    settings = {"JILU_SERVICES": "user,mobile,llm", "JILU_EXTRACTION_WORKERS": "1", "JILU_OCR_PROCESSES": "1"}
    with (
        e2e_stack(tmp_path, **settings) as launcher,
        httpx.Client(base_url=launcher.url("mobile"), timeout=30) as mobile,
        Redis.from_url(launcher.redis_url, decode_responses=True) as events,
    ):
        headers = signed_up(mobile, "alice")
        created = mobile.post("/api/v1/records", headers=headers, json={"content": "A screenshot."})
        assert created.status_code == 201, created.text
        record_id = created.json()["id"]
        files = {"file": ("screenshot.png", screenshot(), "image/png")}
        uploaded = mobile.post(f"/api/v1/records/{record_id}/attachments", headers=headers, files=files)
        assert uploaded.status_code == 201, uploaded.text
        attachment_id = uploaded.json()["id"]

        def extraction() -> dict[str, Any]:
            record = mobile.get(f"/api/v1/records/{record_id}", headers=headers).json()
            return dict(record["attachments"][0]["extraction"])

        assert wait_until(lambda: extraction()["status"] == "running", RUNNING_WITHIN), (
            f"the screenshot was never being read: {extraction()}\n{launcher.output}"
        )
        doomed = launcher.service_processes()["llm"]
        assert wait_until(lambda: bool(ocr_workers(doomed)), OCR_WORKER_WITHIN), (
            f"no OCR worker started under llm_service:\n{launcher.output}"
        )
        children = command_lines(doomed.children(recursive=True))  # the OCR worker, multiprocessing's tracker
        launcher.record_descendants()  # so that the stack's stop kills any of them still running
        (before_kill,) = events.xrevrange(RECORD_EVENTS_STREAM, count=1)
        doomed.kill()
        # Read after the kill, which a dead process cannot change: the reading was cut short.
        assert extraction()["status"] == "running", "the reading ended before the kill: nothing was cut short"

        assert wait_until(lambda: pid_gone(doomed) and all(map(pid_gone, children)), CHILDREN_GONE_WITHIN), (
            "processes of the killed llm_service live on: "
            + "; ".join(f"{child.pid} {command}" for child, command in children.items() if not pid_gone(child))
        )
        assert wait_until(lambda: restarted_llm(launcher, doomed.pid) is not None, RESTARTED_WITHIN), (
            f"the launcher did not restart llm_service:\n{launcher.output}"
        )
        assert wait_until(lambda: extraction()["status"] == "done", READ_WITHIN), (
            f"the reading was lost with the process: {extraction()}\n{launcher.output}"
        )
        assert wait_until(lambda: queue_status(launcher.redis_url).drained, 10), queue_status(launcher.redis_url)

        # Stored once: one change announced for the record since the kill (a second store
        # would announce another), and the text read once.
        since_kill = events.xrange(RECORD_EVENTS_STREAM, min=f"({before_kill[0]}")
        updates = [
            fields for _, fields in since_kill if fields["record_id"] == record_id and fields["type"] == "updated"
        ]
        assert len(updates) == 1, since_kill
        assert extraction()["engine"] == "rapidocr" and extraction()["error"] is None
        assert wait_until(lambda: bool(reading_logged(launcher, attachment_id)), 5), launcher.output
        assert len(reading_logged(launcher, attachment_id)) == 1  # one worker read it to the end
        text = mobile.get(f"/api/v1/attachments/{attachment_id}/extraction", headers=headers).json()["text"]
        assert text.count(CODE_WORDS) == 1, text
        found = mobile.get("/api/v1/search", params={"q": "pelican"}, headers=headers).json()["items"]
        assert [(hit["record"]["id"], hit["matched_in"], hit["attachment_id"]) for hit in found] == [
            (record_id, "attachment", attachment_id)
        ]
