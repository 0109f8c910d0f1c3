"""What an upload is, decided from its bytes alone: never from the client's header or name.

Binary formats are recognised by their signature in the first bytes; anything without one
is text only if the whole file is valid UTF-8 without NUL bytes. Everything else (an
executable, an archive, a video, an unknown blob) is refused, however it is named.
"""

from __future__ import annotations

import codecs

# Enough for every signature below, and for the EBML header of a WebM file.
HEAD_SIZE = 4096

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "image/heic", "image/heif"})
AUDIO_TYPES = frozenset({"audio/mp4", "audio/mpeg", "audio/wav", "audio/ogg", "audio/webm"})
TEXT_TYPE = "text/plain"
PDF_TYPE = "application/pdf"
ALLOWED_TYPES = IMAGE_TYPES | AUDIO_TYPES | {PDF_TYPE, TEXT_TYPE}

# ISO base media file brands (the `ftyp` box): HEIF still images and M4A audio. Android's
# recorder writes voice memos with generic MP4 brands (mp42, isom), so those count as audio
# too unless a video codec brand (avc1, ...) says the file is a video.
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1"}
_M4A_BRANDS = {b"M4A ", b"M4B "}
_GENERIC_MP4_BRANDS = {b"isom", b"iso2", b"mp41", b"mp42", b"3gp4", b"3gp5", b"3gp6"}
_VIDEO_BRANDS = {b"avc1", b"hvc1", b"hev1", b"av01", b"vp09", b"qt  "}


def _iso_media_type(head: bytes) -> str | None:
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(head[:4], "big")
    major = head[8:12]
    compatible = {head[i : i + 4] for i in range(16, min(box_size, len(head)) - 3, 4)}
    if major in _HEIC_BRANDS:
        return "image/heic"
    if major in _M4A_BRANDS:
        return "audio/mp4"
    if major in _HEIF_BRANDS:
        return "image/heic" if compatible & _HEIC_BRANDS else "image/heif"
    if compatible & _M4A_BRANDS:
        return "audio/mp4"
    if major in _GENERIC_MP4_BRANDS and not compatible & _VIDEO_BRANDS:
        return "audio/mp4"
    return None


def _is_mp3_frame(head: bytes) -> bool:
    """An MPEG-1/2/2.5 Layer III frame header (a file without an ID3 tag starts with one)."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    sample_rate = (head[2] >> 2) & 0b11
    return version != 0b01 and layer == 0b01 and bitrate not in (0, 0xF) and sample_rate != 0b11


def _is_webm(head: bytes) -> bool:
    # EBML header, then the DocType element (0x4282) naming "webm".
    return head.startswith(b"\x1a\x45\xdf\xa3") and b"\x42\x82\x84webm" in head[:64]


def binary_type(head: bytes) -> str | None:
    """The type a file's first bytes announce, or None when they announce none we take."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"%PDF-"):
        return PDF_TYPE
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3") or _is_mp3_frame(head):
        return "audio/mpeg"
    if _is_webm(head):
        return "audio/webm"
    return _iso_media_type(head)


class Sniffer:
    """Fed an upload chunk by chunk; `content_type()` at the end says what it is (or None).

    Keeps only the head and an incremental UTF-8 decoder, so files of any size cost the
    same memory. `hopeless` turns true as soon as the file can no longer be anything we
    accept, so an upload can be refused before all of it has arrived.
    """

    def __init__(self) -> None:
        self._head = bytearray()
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._text = True
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if len(self._head) < HEAD_SIZE:
            self._head += chunk[: HEAD_SIZE - len(self._head)]
        if self._text:
            self._text = self._decodes(chunk, final=False)

    def _decodes(self, chunk: bytes, *, final: bool) -> bool:
        if b"\x00" in chunk:
            return False
        try:
            self._decoder.decode(chunk, final=final)
        except UnicodeDecodeError:
            return False
        return True

    @property
    def hopeless(self) -> bool:
        return not self._text and len(self._head) >= HEAD_SIZE and binary_type(bytes(self._head)) is None

    def content_type(self) -> str | None:
        """The sniffed type of everything fed so far, taken as the whole file."""
        found = binary_type(bytes(self._head))
        if found is not None:
            return found
        if self._size and self._text and self._decodes(b"", final=True):
            return TEXT_TYPE
        return None


def sniff(data: bytes) -> str | None:
    """The type of a whole file held in memory (imports, tests)."""
    sniffer = Sniffer()
    sniffer.feed(data)
    return sniffer.content_type()
