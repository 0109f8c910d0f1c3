"""SIGTERM to the launcher while a request and a stream are in flight: the request completes
(and what it wrote is stored), the stream ends with a clean last event instead of being cut
off, the launcher exits 0, and no process it started is left running.

The request is an attachment upload whose body is still arriving when the shutdown begins;
the stream is a chat answer relayed by mobile_service from llm_service, from the fake
provider sending a word every half second (far longer than the shutdown's grace).
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_service.tests.fake_provider import FakeProvider, Reply, run_fake_provider
from tests.e2e.stack import e2e_stack
from tests.faults.acknowledged import sqlite_rows
from tests.support import signed_up, wait_until

pytestmark = pytest.mark.e2e

BOUNDARY = "jilu-graceful-" + uuid.uuid4().hex
FIRST_HALF = b"the first half of the file arrives before the shutdown\n" * 2000
SECOND_HALF = b"the second half arrives while the services are stopping\n" * 2000
SLOW_ANSWER = Reply(chunks=[f"word{i} " for i in range(120)], chunk_delay=0.5)  # a minute of words


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with run_fake_provider() as provider:
        yield provider


def parse_events(raw: str) -> list[tuple[str, Any]]:
    """The `(event, data)` pairs of a Server-Sent Events text (comments skipped)."""
    events = []
    for block in raw.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


class SlowUpload:
    """A multipart upload whose body stops half-way until `release()`; `result` is the answer
    (or the exception)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers = url, headers
        self.released = threading.Event()
        self.result: httpx.Response | BaseException | None = None
        self.thread = threading.Thread(target=self._send, name="slow-upload", daemon=True)

    def _body(self) -> Iterator[bytes]:
        yield (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="half.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode() + FIRST_HALF
        self.released.wait(60)
        yield SECOND_HALF + f"\r\n--{BOUNDARY}--\r\n".encode()

    def _send(self) -> None:
        headers = {**self.headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        try:
            self.result = httpx.post(self.url, headers=headers, content=self._body(), timeout=60)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            self.result = exc

    def start(self) -> SlowUpload:
        self.thread.start()
        return self

    def release(self) -> None:
        self.released.set()


class ChatStream:
    """A streamed chat answer read as it comes; `first_delta` is set when text arrived."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers = url, headers
        self.first_delta = threading.Event()
        self.raw = ""
        self.status: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._read, name="chat-stream", daemon=True)

    def _read(self) -> None:
        try:
            with httpx.stream(
                "POST",
                self.url,
                headers=self.headers,
                json={"content": "What did I write?", "stream": True},
                timeout=60,
            ) as response:
                self.status = response.status_code
                for text in response.iter_text():
                    self.raw += text
                    if "event: delta" in self.raw:
                        self.first_delta.set()
        except BaseException as exc:  # noqa: BLE001 - the test reports it (a cut-off stream)
            self.error = exc
        finally:
            self.first_delta.set()

    def start(self) -> ChatStream:
        self.thread.start()
        return self


@pytest.mark.sqlite  # reads the SQLite file afterwards; shutting down does not depend on the database
def test_sigterm_lets_the_request_complete_and_ends_the_stream_cleanly(fake: FakeProvider, tmp_path: Path) -> None:
    fake.default_reply = SLOW_ANSWER
    with e2e_stack(
        tmp_path,
        JILU_SERVICES="user,mobile,llm",
        JILU_DATABASE_URL="",  # SQLite in the data dir, whatever the suite runs on: read below
        **fake.launch_settings(),
    ) as launcher:
        base = launcher.url("mobile")
        with httpx.Client(base_url=base, timeout=30) as mobile:
            headers = signed_up(mobile, "stopper")
            # Opted out of AI: no analysis call takes the provider's slow answer.
            created = mobile.post("/api/v1/records", headers=headers, json={"content": "notes", "ai_opt_out": True})
            record_id = created.json()["id"]
            conversation = mobile.post("/api/v1/chat/conversations", headers=headers, json={})
            assert conversation.status_code == 201, conversation.text
        conversation_id = conversation.json()["id"]

        stream = ChatStream(f"{base}/api/v1/chat/conversations/{conversation_id}/messages", headers).start()
        upload = SlowUpload(f"{base}/api/v1/records/{record_id}/attachments", headers).start()
        tmp_dir = launcher.data_dir / "uploads" / "tmp"
        assert wait_until(lambda: tmp_dir.is_dir() and any(tmp_dir.iterdir()), timeout=60), "the upload never began"
        assert stream.first_delta.wait(60) and stream.error is None, f"no answer began: {stream.error}"

        launcher.record_descendants()  # every process under it now: none may outlive it
        launcher.process.send_signal(signal.SIGTERM)
        shutting_down = lambda: any("Shutting down" in line for line in launcher.service_lines("mobile"))  # noqa: E731
        assert wait_until(shutting_down, timeout=30), f"mobile_service never began to stop:\n{launcher.output}"
        upload.release()  # the rest of the body arrives while mobile_service is stopping
        upload.thread.join(60)
        stream.thread.join(60)
        code = launcher.wait_exit()

        assert isinstance(upload.result, httpx.Response), f"the upload failed: {upload.result!r}"
        assert upload.result.status_code == 201, upload.result.text
        assert stream.error is None, f"the stream was cut off: {stream.error!r}\n{stream.raw[-500:]}"
        assert stream.status == 201
        events = parse_events(stream.raw)
        assert events and events[0][0] == "delta"
        last, data = events[-1]
        assert (last, data["error"]) == ("error", "service_unavailable"), events[-3:]
        assert "shutting down" in data["detail"]
        assert code == 0, launcher.output
        assert launcher.alive_leftovers() == []

    # What the completed request wrote is stored, whole.
    stored = upload.result.json()
    _, _, rows = sqlite_rows(tmp_path / "data" / "jilu.db")
    assert [(sha, size) for _, sha, size, _ in rows] == [(stored["sha256"], len(FIRST_HALF + SECOND_HALF))]
    owner = rows[0][0]
    path = tmp_path / "data" / "uploads" / owner / stored["sha256"][:2] / stored["sha256"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == stored["sha256"]
