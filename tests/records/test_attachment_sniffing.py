"""Deciding an upload's type from its bytes. (Cleaning the names clients send:
tests/common/test_uploads.py.)"""

from __future__ import annotations

import secrets

import pytest

from common.records.attachments.sniff import HEAD_SIZE, sniff
from tests.records.attachment_support import ELF, MP3, PDF, PE, ftyp, image_bytes, wav_bytes


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (image_bytes("JPEG"), "image/jpeg"),
        (image_bytes("PNG"), "image/png"),
        (image_bytes("GIF"), "image/gif"),
        (image_bytes("WEBP"), "image/webp"),
        (ftyp(b"heic", b"mif1", b"heic"), "image/heic"),
        (ftyp(b"mif1", b"mif1", b"heic"), "image/heic"),
        (ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), "audio/mp4"),
        (MP3, "audio/mpeg"),
        (b"\xff\xfb\x90\x64" + bytes(400), "audio/mpeg"),
        (wav_bytes(), "audio/wav"),
        (b"OggS\x00\x02" + bytes(100), "audio/ogg"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm\x42\x87\x81\x04" + bytes(100), "audio/webm"),
        (PDF, "application/pdf"),
        ("今天下午开会讨论预算\nplain text, 中文也行\n".encode(), "text/plain"),
        (b"\xef\xbb\xbfwith a byte order mark", "text/plain"),
        (ELF, None),
        (PE, None),
        (b"PK\x03\x04" + secrets.token_bytes(300), None),  # a zip
        (ftyp(b"isom", b"isom", b"avc1", b"mp41"), None),  # an MP4 video
        (ftyp(b"mp42", b"isom", b"mp42"), "audio/mp4"),  # an Android voice memo
        (ftyp(b"avif", b"avif", b"mif1"), None),
        (b"text with a NUL\x00 byte", None),
        ("caf\u00e9".encode("latin-1") + b" is not UTF-8", None),
        (b"", None),
    ],
)
def test_the_type_comes_from_the_bytes(data: bytes, expected: str | None) -> None:
    assert sniff(data) == expected


def test_invalid_utf8_far_into_a_text_file_is_refused() -> None:
    text = "好".encode() * 5000
    assert sniff(text) == "text/plain"
    assert sniff(text + b"\xff tail") is None
    # A multi-byte character split by the end of the head is still valid text.
    assert sniff(b"a" * (HEAD_SIZE - 1) + "好".encode()) == "text/plain"
