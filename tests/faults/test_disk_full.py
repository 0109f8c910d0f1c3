"""The data dir's disk fills up: uploads fail with a clear 507, nothing half-written remains,
the database stays consistent, and once there is room again everything works without a
restart.

The whole data dir (the SQLite database, its WAL and the uploads) is on a small tmpfs, as
it would be on one disk in production, so a full disk meets both the file writes and the
database's. Needs root (to mount the tmpfs); skipped, saying why, otherwise.
"""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import e2e_stack
from tests.faults.acknowledged import sqlite_rows
from tests.support import signed_up

pytestmark = pytest.mark.e2e

TMPFS_MB = 32
BIG_FILE = b"full disk test line\n" * 100_000  # 2 MB of UTF-8 text
ROOM_LEFT = 256 * 1024  # freed for the failing upload: it gets part-way, then the disk is full
BIG_CONTENT = "梅花 plum blossom " * 12_000  # a record far larger than what the WAL has room for


@contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` mounted at `path` (skips when that is not possible here)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the data dir needs root")
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path, leave: int = 0) -> None:
    """Write `path` until the disk is full, then give back `leave` bytes (about)."""
    with path.open("ab", buffering=0) as out:  # unbuffered: nothing left to flush at the end
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    if leave:
        os.truncate(path, max(0, path.stat().st_size - leave))


def temp_files(data_dir: Path) -> list[str]:
    tmp = data_dir / "uploads" / "tmp"
    return sorted(entry.name for entry in tmp.iterdir()) if tmp.is_dir() else []


@pytest.mark.sqlite  # the database file is on the full disk
def test_a_full_disk_answers_507_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    with (
        small_disk(tmp_path / "data", TMPFS_MB) as data_dir,
        e2e_stack(tmp_path, JILU_SERVICES="user,mobile", JILU_DATABASE_URL="") as launcher,
        httpx.Client(base_url=launcher.url("mobile"), timeout=30) as mobile,
    ):
        headers = signed_up(mobile, "fuller")
        record = mobile.post("/api/v1/records", headers=headers, json={"content": "before the disk filled"})
        assert record.status_code == 201, record.text
        record_id = record.json()["id"]
        first = mobile.post(
            f"/api/v1/records/{record_id}/attachments", headers=headers, files={"file": ("a.txt", b"small file\n")}
        )
        assert first.status_code == 201, first.text
        version = first.json()["record_version"]

        filler = data_dir / "filler"
        fill(filler, leave=ROOM_LEFT)
        refused = mobile.post(
            f"/api/v1/records/{record_id}/attachments", headers=headers, files={"file": ("big.txt", BIG_FILE)}
        )
        assert refused.status_code == 507, refused.text
        assert refused.json()["error"] == "insufficient_storage"
        assert "disk is full" in refused.json()["detail"]
        assert temp_files(data_dir) == [], "the partial upload was left behind"

        fill(filler)  # not a byte left: the database cannot grow either
        own_id = str(uuid.uuid4())
        big = mobile.post("/api/v1/records", headers=headers, json={"id": own_id, "content": BIG_CONTENT})
        assert big.status_code == 507, big.text
        assert big.json()["error"] == "insufficient_storage"
        again = mobile.post(
            f"/api/v1/records/{record_id}/attachments", headers=headers, files={"file": ("big.txt", BIG_FILE)}
        )
        assert again.status_code == 507, again.text

        # Reading still works, and shows nothing of what was refused.
        assert mobile.get(f"/api/v1/records/{own_id}", headers=headers).status_code == 404
        shown = mobile.get(f"/api/v1/records/{record_id}", headers=headers).json()
        assert shown["version"] == version
        assert [a["sha256"] for a in shown["attachments"]] == [first.json()["sha256"]]
        assert temp_files(data_dir) == []
        integrity, foreign, rows = sqlite_rows(data_dir / "jilu.db")
        assert (integrity, foreign) == ("ok", [])
        assert len(rows) == 1

        # Room again: the same requests succeed, without restarting anything.
        filler.unlink()
        stored = mobile.post(
            f"/api/v1/records/{record_id}/attachments", headers=headers, files={"file": ("big.txt", BIG_FILE)}
        )
        assert stored.status_code == 201, stored.text
        big = mobile.post("/api/v1/records", headers=headers, json={"id": own_id, "content": BIG_CONTENT})
        assert big.status_code == 201, big.text
        downloaded = mobile.get(f"/api/v1/attachments/{stored.json()['id']}", headers=headers)
        assert downloaded.content == BIG_FILE
        sha256 = stored.json()["sha256"]
        owner = rows[0][0]
        assert (data_dir / "uploads" / owner / sha256[:2] / sha256).read_bytes() == BIG_FILE
        integrity, foreign, rows = sqlite_rows(data_dir / "jilu.db")
        assert (integrity, foreign, len(rows)) == ("ok", [], 2)
        assert not any("exited with code" in line for line in launcher.lines), launcher.output
        assert not any("unhandled error" in line for line in launcher.lines), launcher.output
