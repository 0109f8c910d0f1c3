"""Images as a vision model is sent them: upright, RGB, at most `max_side` pixels on their
longer side, re-encoded as a JPEG that carries nothing but pixels (no EXIF, so no GPS
position, camera or time; no ICC profile, comment or XMP), and as a `data:` URL for an
`image_url` content part.
"""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageOps, UnidentifiedImageError

VISION_MAX_SIDE = 1568  # what vision models look at without scaling down again
VISION_QUALITY = 85
# Larger images are refused before decoding (a 50-megapixel photo is well inside).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
_BACKGROUND = (255, 255, 255)  # what transparent pixels become (screenshots are mostly light)


class UnreadableImage(ValueError):
    """The bytes are not an image Pillow can read (or one too large to decode safely)."""


def vision_jpeg(data: bytes, *, max_side: int = VISION_MAX_SIDE, quality: int = VISION_QUALITY) -> bytes:
    """The image turned by its EXIF orientation, flattened onto white when transparent,
    scaled down to fit `max_side` (never up), as a JPEG without any metadata. The first
    frame of an animation. CPU work: run it in a worker thread. `UnreadableImage` when the
    bytes are not an image."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise UnreadableImage("the image has too many pixels")
            # JPEG decodes at 1/2, 1/4 or 1/8 scale when that is still large enough.
            opened.draft("RGB", (max_side, max_side))
            image = _flattened(ImageOps.exif_transpose(opened))
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise UnreadableImage("the file is not a readable image") from exc
    except UnreadableImage:
        raise
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data
        raise UnreadableImage("the image is damaged") from exc
    # `convert` copies `info`, and Pillow writes a JPEG comment found there: keep none of it.
    image.info = {}
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()


def _flattened(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def data_url(jpeg: bytes) -> str:
    """`data:image/jpeg;base64,...`: how an `image_url` content part carries an image inline."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
