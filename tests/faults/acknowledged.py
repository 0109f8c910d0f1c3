"""Clients that write through the launched services and remember what was acknowledged, and
the checks that everything acknowledged is there, whole, and nothing half-written is visible.

A `Writer` creates records (with ids of its own, so a create whose answer was lost is sent
again until it is acknowledged: 201, or 200 when the lost one had been stored) and uploads
attachments (a lost upload is not sent again: it may or may not have been stored, and
either is fine as long as it is whole). Every answer it got is counted by status: a 500 is
a failure whatever happened around it.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

PASSWORD = "plum-Lantern-42"
WORDS = "plum river heron lantern 梅花 河边 budget notes spring walk 记录 tea rain window".split()
# What a lost connection looks like while a service is killed or restarting.
LOST = (httpx.TransportError,)
# Answers that mean "not now" rather than "no": the write is simply not acknowledged.
NOT_NOW = {502, 503, 504}
# What `AttachmentStorage.new_temp_path` names an upload in progress, and its thumbnail.
TEMP_NAME = re.compile(r"^[0-9a-f]{32}\.part(\.thumb\.jpg)?$")


def text_payload(rng: random.Random) -> bytes:
    """UTF-8 text of 1 to 16 KB, different for every call."""
    words = [rng.choice(WORDS) for _ in range(rng.randint(200, 2000))]
    return (f"{uuid.UUID(int=rng.getrandbits(128))}\n" + " ".join(words)).encode()


def png_payload(rng: random.Random) -> bytes:
    """A small PNG of random pixels (it gets a thumbnail)."""
    image = Image.frombytes("RGB", (24, 24), rng.randbytes(24 * 24 * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@dataclass
class Upload:
    record_id: str
    data: bytes
    acknowledged_id: str | None = None  # the attachment id of a 201

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Writer:
    """One client writing as its own user through `urls`: a random one per request, but not
    one that lost an answer in the last second (as a client fails over to another replica)."""

    name: str
    urls: Sequence[str]
    rng: random.Random
    token: str = ""
    records: dict[str, str] = field(default_factory=dict)  # acknowledged id -> content
    pending_record: tuple[str, str] | None = None  # a create sent, not yet acknowledged
    uploads: list[Upload] = field(default_factory=list)  # every upload sent
    statuses: Counter[int | str] = field(default_factory=Counter)
    recreated: int = 0  # creates acknowledged with 200: the lost attempt had been stored
    acknowledged: int = 0
    _down: dict[str, float] = field(default_factory=dict)  # url -> until when it is avoided

    def _pick_url(self) -> str:
        now = time.monotonic()
        up = [url for url in self.urls if self._down.get(url, 0.0) <= now]
        return self.rng.choice(up or list(self.urls))

    def client(self) -> httpx.Client:
        return httpx.Client(timeout=20.0)

    def register(self, client: httpx.Client, url: str) -> None:
        username = f"{self.name}-{uuid.uuid4().hex[:8]}"
        client.post(f"{url}/api/v1/auth/register", json={"username": username, "password": PASSWORD}).raise_for_status()
        answer = client.post(f"{url}/api/v1/auth/token", data={"username": username, "password": PASSWORD})
        answer.raise_for_status()
        self.token = answer.json()["access_token"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _count(self, response: httpx.Response | None) -> int | None:
        if response is None:
            self.statuses["lost"] += 1
            return None
        self.statuses[response.status_code] += 1
        if response.status_code not in {200, 201, *NOT_NOW}:
            raise AssertionError(f"{self.name}: unexpected {response.status_code}: {response.text[:300]}")
        return response.status_code

    def step(self, client: httpx.Client) -> bool:
        """One write: a create (or the retry of a lost one), or an upload to an acknowledged
        record. Counts what was acknowledged; True when the answer was lost."""
        url = self._pick_url()
        if self.pending_record is None and (not self.records or self.rng.random() < 0.5):
            record_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            self.pending_record = (record_id, f"{self.name} {record_id} " + " ".join(self.rng.sample(WORDS, 5)))
        if self.pending_record is not None:
            record_id, content = self.pending_record
            try:
                response: httpx.Response | None = client.post(
                    f"{url}/api/v1/records", headers=self.headers, json={"id": record_id, "content": content}
                )
            except LOST:
                response = None
                self._down[url] = time.monotonic() + 1.0
            status = self._count(response)
            if status in (200, 201):
                assert response is not None
                assert response.json()["content"] == content, response.text[:300]
                self.records[record_id] = content
                self.pending_record = None
                self.recreated += status == 200
                self.acknowledged += 1
            return status is None
        record_id = self.rng.choice(sorted(self.records))
        data = png_payload(self.rng) if self.rng.random() < 0.2 else text_payload(self.rng)
        upload = Upload(record_id, data)
        self.uploads.append(upload)
        try:
            response = client.post(
                f"{url}/api/v1/records/{record_id}/attachments",
                headers=self.headers,
                files={"file": (f"f{len(self.uploads)}.bin", data)},
            )
        except LOST:
            response = None
            self._down[url] = time.monotonic() + 1.0
        status = self._count(response)
        if status == 201:
            assert response is not None
            body = response.json()
            assert (body["sha256"], body["size"]) == (upload.sha256, len(data)), body
            upload.acknowledged_id = body["id"]
            self.acknowledged += 1
        return status is None

    def run(self, target: int, deadline: float, stop: threading.Event, enough: Callable[[], bool]) -> None:
        """Write until `target` writes were acknowledged and `enough()` (or `deadline`, or `stop`)."""
        with self.client() as client:
            goal = self.acknowledged + target
            while (self.acknowledged < goal or not enough()) and time.monotonic() < deadline and not stop.is_set():
                if self.step(client):
                    time.sleep(0.05)  # the service is down or restarting: do not spin


def read_all_records(client: httpx.Client, url: str, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every live record of the caller, by id, through the list's pages."""
    found: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{url}/api/v1/records", headers=headers, params=params)
        page.raise_for_status()
        body = page.json()
        found.update({item["id"]: item for item in body["items"]})
        cursor = body["next_cursor"]
        if not cursor:
            return found


def check_writer(writer: Writer, client: httpx.Client, url: str) -> list[str]:
    """What is wrong with what `writer` wrote, as seen through the API (empty: all is well).
    Every acknowledged record is there with its content; a record the writer never got an
    answer for may be there too, whole. Every acknowledged attachment is on its record with
    its bytes; any other attachment is one of the writer's lost uploads, whole."""
    problems: list[str] = []
    records = read_all_records(client, url, writer.headers)
    sent = dict(writer.records)
    if writer.pending_record is not None:
        sent.setdefault(*writer.pending_record)
    for record_id, content in writer.records.items():
        if record_id not in records:
            problems.append(f"{writer.name}: acknowledged record {record_id} is missing")
        elif records[record_id]["content"] != content:
            problems.append(f"{writer.name}: record {record_id} has other content: {records[record_id]['content']!r}")
    for record_id, record in records.items():
        if sent.get(record_id) != record["content"]:
            problems.append(f"{writer.name}: record {record_id} was never sent as {record['content']!r}")
    by_sha = {upload.sha256: upload for upload in writer.uploads}
    acknowledged = {upload.acknowledged_id: upload for upload in writer.uploads if upload.acknowledged_id}
    shown: set[str] = set()
    for record in records.values():
        for attachment in record["attachments"]:
            shown.add(attachment["id"])
            upload = by_sha.get(attachment["sha256"])
            if upload is None or upload.record_id != record["id"] or attachment["size"] != len(upload.data):
                problems.append(f"{writer.name}: attachment {attachment['id']} was never uploaded so: {attachment}")
                continue
            got = client.get(f"{url}/api/v1/attachments/{attachment['id']}", headers=writer.headers)
            if got.status_code != 200 or got.content != upload.data:
                problems.append(f"{writer.name}: attachment {attachment['id']} answers {got.status_code}, other bytes")
            if attachment["content_type"] == "image/png" and not attachment["thumbnail_url"]:
                problems.append(f"{writer.name}: the PNG {attachment['id']} has no thumbnail")
    for attachment_id, upload in acknowledged.items():
        if attachment_id not in shown:
            problems.append(f"{writer.name}: acknowledged attachment {attachment_id} ({upload.sha256}) is missing")
    return problems


def check_files(data_dir: Path, rows: list[tuple[str, str, int, bool]], uploaded: dict[str, bytes]) -> list[str]:
    """What is wrong on disk: every attachment row (owner, sha256, size, has_thumbnail) has
    its file with exactly the bytes uploaded (and its thumbnail); a file no row refers to is
    only a whole one of an upload whose answer was lost (placed, then killed before the
    commit); `uploads/tmp/` holds nothing but temp files (an upload's `.part`, its thumbnail
    `.part.thumb.jpg`) a kill left there, never shown, swept by the purge job once stale."""
    problems: list[str] = []
    root = data_dir / "uploads"
    referenced: set[Path] = set()
    for owner, sha256, size, has_thumbnail in rows:
        path = root / owner / sha256[:2] / sha256
        referenced.add(path)
        if not path.is_file():
            problems.append(f"the file of attachment {sha256} is missing")
        elif path.stat().st_size != size or hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
            problems.append(f"the file {path} is not what was uploaded")
        if has_thumbnail:
            thumbnail = path.with_name(f"{sha256}.thumb.jpg")
            referenced.add(thumbnail)
            if not thumbnail.is_file() or not thumbnail.read_bytes().startswith(b"\xff\xd8"):
                problems.append(f"the thumbnail of {sha256} is missing or not a JPEG")
    for path in root.rglob("*"):
        if not path.is_file() or path in referenced:
            continue
        if path.parent == root / "tmp":
            if not TEMP_NAME.match(path.name):
                problems.append(f"unexpected file in uploads/tmp: {path.name}")
            continue
        sha256 = path.name.removesuffix(".thumb.jpg")
        if sha256 not in uploaded:
            problems.append(f"a file nobody uploaded: {path}")
        elif not path.name.endswith(".thumb.jpg") and path.read_bytes() != uploaded[sha256]:
            problems.append(f"an unreferenced file with other bytes than uploaded: {path}")
    return problems


def sqlite_rows(database: Path) -> tuple[str, list[str], list[tuple[str, str, int, bool]]]:
    """`PRAGMA integrity_check`, `PRAGMA foreign_key_check` and every attachment row of the
    SQLite database at `database` (read-only; the services may still have it open)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        integrity = "\n".join(row[0] for row in connection.execute("PRAGMA integrity_check"))
        foreign = [repr(row) for row in connection.execute("PRAGMA foreign_key_check")]
        rows = [
            (owner, sha256, int(size), bool(thumb))
            for owner, sha256, size, thumb in connection.execute(
                "SELECT owner_id, sha256, size, has_thumbnail FROM attachments"
            )
        ]
        return integrity, foreign, rows
    finally:
        connection.close()
