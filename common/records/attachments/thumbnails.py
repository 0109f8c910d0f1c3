"""Image thumbnails: upright, at most 512 px on the longest side, JPEG without metadata.

The camera's EXIF orientation is applied to the pixels, then every piece of metadata (EXIF
with its GPS position, XMP, comments, ICC profile) is left behind: a thumbnail says nothing
about where a photo was taken. Formats Pillow cannot open (HEIC without a plugin) and
images it fails on simply get no thumbnail.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anyio.to_thread
from PIL import Image, ImageOps

from common.records.attachments.sniff import IMAGE_TYPES

MAX_SIDE = 512
JPEG_QUALITY = 82
# Above this many pixels (after JPEG draft decoding) no thumbnail is made: a guard against
# decompression bombs that stays under Pillow's own warning threshold.
MAX_PIXELS = 64_000_000
# Pillow's decoders for these ship with it; HEIC/HEIF would need a plugin.
THUMBNAIL_SOURCES = IMAGE_TYPES - {"image/heic", "image/heif"}

logger = logging.getLogger(__name__)


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency laid on white (JPEG has no alpha)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def write_thumbnail(source: Path, target: Path) -> bool:
    """Write `source`'s thumbnail to `target`; False (and nothing written) when there is none.
    Blocking: see `make_thumbnail`."""
    try:
        with Image.open(source) as image:
            image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a reduced scale
            if image.width * image.height > MAX_PIXELS:
                return False
            upright = ImageOps.exif_transpose(image)
            thumbnail = _flatten(upright)
            thumbnail.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
            thumbnail.info = {}  # no EXIF, XMP, comment or ICC profile travels on
            thumbnail.save(target, "JPEG", quality=JPEG_QUALITY, optimize=True)
    except Exception:  # hostile or damaged images raise all sorts: then no thumbnail
        logger.info("no thumbnail for %s", source.name, exc_info=True)
        target.unlink(missing_ok=True)
        return False
    return True


async def make_thumbnail(content_type: str, source: Path, target: Path) -> bool:
    """Thumbnail an image of `content_type` off the event loop; False for non-images."""
    if content_type not in THUMBNAIL_SOURCES:
        return False
    return await anyio.to_thread.run_sync(write_thumbnail, source, target)
