"""Attachment files on disk, stored once per owner and content.

    <data_dir>/uploads/<owner_id>/<sha256[:2]>/<sha256>            the bytes as uploaded
    <data_dir>/uploads/<owner_id>/<sha256[:2]>/<sha256>.thumb.jpg  its thumbnail, if any
    <data_dir>/uploads/tmp/                                        uploads in progress

A file is written under `tmp/`, flushed to disk, then renamed into place: a reader never
sees half a file, and a crash leaves at most a stray temp file. The rename replaces an
existing file of the same content, which is byte for byte what it already was.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_OWNER = re.compile(r"^[0-9A-Za-z-]{1,64}$")


class AttachmentStorage:
    """Paths and file operations under `<data_dir>/uploads`. Blocking: call it off the loop."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "uploads"
        self.tmp_dir = self.root / "tmp"

    def path(self, owner_id: str, sha256: str) -> Path:
        # The parts come from our own rows, but a path is built from them: check anyway.
        if not _OWNER.match(owner_id) or not _SHA256.match(sha256):
            raise ValueError("not an owner id and a sha256")
        return self.root / owner_id / sha256[:2] / sha256

    def thumbnail_path(self, owner_id: str, sha256: str) -> Path:
        return self.path(owner_id, sha256).with_name(f"{sha256}.thumb.jpg")

    def new_temp_path(self, suffix: str = "") -> Path:
        """A fresh name under `tmp/` (the folder is created)."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        return self.tmp_dir / f"{secrets.token_hex(16)}{suffix}.part"

    def place(self, temp: Path, final: Path) -> None:
        """Move a finished temp file to `final` atomically and durably."""
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)
        _fsync_dir(final.parent)

    def remove(self, owner_id: str, sha256: str) -> None:
        """Delete a content's file and thumbnail. Folders stay: another content of the same
        prefix may be moving into one right now."""
        self.path(owner_id, sha256).unlink(missing_ok=True)
        self.thumbnail_path(owner_id, sha256).unlink(missing_ok=True)

    def remove_stale_temp_files(self, older_than_seconds: float) -> int:
        """Delete temp files a crash left behind (nothing in flight is that old)."""
        if not self.tmp_dir.is_dir():
            return 0
        cutoff, removed = time.time() - older_than_seconds, 0
        for entry in self.tmp_dir.iterdir():
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # finished (moved into place) meanwhile
        return removed


def discard(path: Path | None) -> None:
    """Remove a temp file if it is still there."""
    if path is not None:
        path.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open a directory; the rename itself is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
