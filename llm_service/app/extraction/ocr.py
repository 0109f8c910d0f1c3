"""Offline OCR of photos and screenshots: RapidOCR (PP-OCR's Chinese and English models, shipped
inside the `rapidocr-onnxruntime` wheel, so nothing is downloaded) in worker processes.

    pool = OcrPool(max_workers=1)          # in the lifespan; nothing starts until the first read
    extracted = await ocr_image(data, pool)
    pool.close()

Each worker process loads one engine the first time it reads and keeps it. Processes, not
threads, though the event loop fares about the same with either (measured: onnxruntime lets go
of the GIL, and the Python around it is short): a process keeps the engine's memory (a peak of
about 500 MB per image, handed back between images) and any crash of the native code, or the
decoders, on a hostile file out of the service; it runs at a lower priority; and one that dies
is replaced. The price: about 2.5 s to start a worker and load the engine, once, and the
image's bytes pickled to it. A worker is spawned, not forked, so a program that starts a pool
must guard its entry point (`if __name__ == "__main__":`), as Jilu's services do.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import io
import math
import multiprocessing
import os
import sys
import threading
import time
import unicodedata
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from PIL import Image, ImageOps

from llm_service.app.extraction.results import Extracted, ExtractionFailed

if TYPE_CHECKING:
    from rapidocr_onnxruntime import RapidOCR

ENGINE = "rapidocr"
NO_TEXT = "no text in the image"
NOT_AN_IMAGE = "not an image Jilu can read"
TOO_LARGE = "the image is too large to read"
OCR_UNAVAILABLE = "offline OCR is not available on this server"

# What is read at most, in pixels: about a phone screenshot (1080 × 2400 = 2.6 MP), which is
# read as it is, while a 12 MP photo goes to about 1860 × 1400 (JPEG decodes at half size
# straight away). A budget of pixels rather than a longest side, so a long scrolling screenshot
# keeps its width: 1080 × 12000 is read at 483 × 5374, and 98% of its 28 px text came back.
# Lines are recognised from this image (at 48 px tall), so it bounds memory and decoding.
MAX_OCR_PIXELS = 2_600_000
# Larger images are refused before they are decoded (Pillow's own bomb limit, ~89 MP).
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# The text detector sees at most this many pixels (a phone screenshot at 736 × 1632). Measured
# on screenshots: 14 px text still found (99% of characters read); against the whole 2.6 MP,
# about 0.25 s and 250 MB less per screenshot. At 0.8 MP, the 1080 × 12000 screenshot fell to 92%.
DETECTION_PIXELS = 1_200_000
DETECTION_SHORT_SIDE = 736  # RapidOCR's own: images are scaled up until their short side is this
# Text the recogniser is less sure of than this is dropped (noise read as a stray character).
MIN_CONFIDENCE = 0.5
# onnxruntime threads per worker: one read a screenshot in twice the time of two (3.5 s against
# 1.8 s here); more than two would take every core of a small machine from the service. The
# worker also runs at a lower priority than the service.
DEFAULT_THREADS = 2
WORKER_NICENESS = 5

T = TypeVar("T")


class Unreadable(Exception):
    """Nothing can be read here, and no retry would change that (not an image, too large, a
    broken or locked PDF, no OCR engine on this machine): extraction is `skipped` with
    `reason`, which is short and safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class OcrResult:
    """What one image gave: its text in reading order (lines joined by "\\n"), the mean
    confidence of the text kept (None when there is none), how many text boxes were kept, the
    size read (width, height; after EXIF rotation and downscaling) and the seconds the worker
    spent (decoding included)."""

    text: str
    confidence: float | None
    boxes: int
    size: tuple[int, int]
    seconds: float


class OcrPool:
    """A bounded pool of OCR worker processes, each holding one RapidOCR engine loaded on its
    first read. `max_workers` images are read at once; more wait their turn. The processes
    start on first use; `close()` stops them."""

    def __init__(
        self, max_workers: int = 1, *, threads: int = DEFAULT_THREADS, max_pixels: int = MAX_OCR_PIXELS
    ) -> None:
        if max_workers < 1:
            raise ValueError("an OCR pool needs at least one worker")
        self.max_workers = max_workers
        self.threads = max(1, min(threads, os.cpu_count() or 1))
        self.max_pixels = max_pixels
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False

    def _running(self) -> ProcessPoolExecutor:
        if self._closed:
            raise RuntimeError("the OCR pool is closed")
        if self._executor is None:
            # spawn, not fork: the service has threads (and an event loop) a fork would copy mid-flight.
            self._executor = ProcessPoolExecutor(
                self.max_workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self.threads,),
            )
        return self._executor

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` in a worker process (a module-level function; arguments and result
        are pickled). A worker that dies (killed, out of memory) raises `ExtractionFailed`, and
        the next call starts new workers."""
        executor = self._running()
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, _in_worker, function, args)
        except BrokenProcessPool as exc:
            if self._executor is executor:
                self._executor = None
                executor.shutdown(wait=False, cancel_futures=True)
            raise ExtractionFailed("the OCR worker stopped unexpectedly") from exc

    async def read(self, image_bytes: bytes) -> OcrResult:
        """The text of an image (any format Pillow reads). Raises `Unreadable` for bytes that
        are not such an image, or one too large to decode safely."""
        return await self.run(read_image, image_bytes, self.max_pixels)

    def close(self) -> None:
        """Stop the workers (waiting for an image being read); queued reads are cancelled."""
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


async def ocr_image(data: bytes, pool: OcrPool) -> Extracted:
    """Read a photo or screenshot: `done` with its text and `details["confidence"]`, or
    `skipped` when it has no text or is not an image Jilu can read."""
    try:
        result = await pool.read(data)
    except Unreadable as exc:
        return Extracted("skipped", ENGINE, reason=exc.reason)
    if not result.text or result.confidence is None:
        return Extracted("skipped", ENGINE, reason=NO_TEXT)
    return Extracted("done", ENGINE, result.text, details={"confidence": round(result.confidence, 3)})


# --- In the worker process ---------------------------------------------------------------

_threads = DEFAULT_THREADS
_engine: RapidOCR | None = None


def _start_worker(threads: int) -> None:
    """Set up a new worker: its thread budget, before numpy or OpenCV start thread pools of
    their own, a lower priority than the service, and how it allocates memory."""
    global _threads
    _threads = threads
    _exit_with_parent()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    try:
        os.nice(WORKER_NICENESS)
    except OSError:
        pass  # a priority is a nicety, not a need
    # onnxruntime allocates and frees hundreds of MB of tensors per image. glibc's default
    # raises its mmap threshold as they are freed, so later tensors come from the heap, which
    # fragments and grows (peak 650-715 MB, 450 MB kept between images, measured); a fixed 32 MB
    # threshold and a trim after each job keep the peak near 470-510 MB and 135 MB when idle.
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)


_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h


def _exit_with_parent() -> None:
    """End this worker as soon as the service that started it is gone, even killed (SIGKILL
    runs no shutdown): an orphan would keep its models' memory, and the service's stdout,
    which it inherited, open, so the launcher reading that pipe would never see the service
    exit and never restart it. The parent's sentinel (a pipe only the parent writes) reads
    EOF when the parent dies."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@functools.cache
def _glibc() -> Any:
    """glibc, when this process runs on it (mallopt and malloc_trim are glibc's own)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def _in_worker(function: Callable[..., T], args: tuple[Any, ...]) -> T:
    """Run one job, then hand the memory it freed back to the system: a worker waits idle most
    of the time and should not hold an image's worth of memory while it does."""
    try:
        return function(*args)
    finally:
        libc = _glibc()
        if libc is not None:
            libc.malloc_trim(0)


def _ocr_engine() -> RapidOCR:
    global _engine
    if _engine is None:
        try:
            import cv2
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            # opencv-python needs libGL.so.1 and libglib: a slim image without them cannot OCR,
            # which no retry mends.
            raise Unreadable(OCR_UNAVAILABLE) from exc

        cv2.setNumThreads(1)
        _engine = RapidOCR(
            intra_op_num_threads=_threads,
            inter_op_num_threads=1,
            text_score=MIN_CONFIDENCE,
            # Lines of one batch are padded to the widest: 4 read a screenshot ~15% faster than 6.
            rec_batch_num=4,
            # The image is already within MAX_OCR_PIXELS: no second resize inside the engine.
            max_side_len=100_000,
        )
    return _engine


def prepare_image(data: bytes, max_pixels: int = MAX_OCR_PIXELS) -> Image.Image:
    """Decode an image for OCR: upright (EXIF orientation applied), RGB (transparency on white)
    and at most `max_pixels` (downscaled, aspect kept). Raises `Unreadable`."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; here both refuse.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise Unreadable(TOO_LARGE)
            scale = min(1.0, math.sqrt(max_pixels / (width * height)))
            if scale < 1.0:
                # JPEG decodes at 1/2, 1/4 or 1/8 directly: a 12 MP photo never exists in full.
                image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
            image = ImageOps.exif_transpose(image)
            image = _on_white(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Unreadable(TOO_LARGE) from exc
    except Unreadable:
        raise
    except Exception as exc:  # Pillow's decoders raise many kinds of errors on malformed input
        raise Unreadable(NOT_AN_IMAGE) from exc
    width, height = image.size
    if width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return image


def _on_white(image: Image.Image) -> Image.Image:
    """RGB; a transparent background (common in screenshots and stickers) becomes white, not
    the black that dropping the alpha channel would leave under black text."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def read_image(data: bytes, max_pixels: int = MAX_OCR_PIXELS) -> OcrResult:
    """Decode and read an image in this process (what a worker runs for `OcrPool.read`)."""
    import numpy as np

    started = time.perf_counter()
    image = prepare_image(data, max_pixels)
    # RapidOCR takes arrays in OpenCV's order (BGR).
    pixels = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
    engine = _ocr_engine()
    _detect_at(engine, *detection_size(*image.size))
    found, _ = engine(pixels)
    boxes = [(box, str(text), float(score)) for box, text, score in found or []]
    text, confidence, kept = text_in_reading_order(boxes)
    return OcrResult(text, confidence, kept, image.size, time.perf_counter() - started)


def _detect_at(engine: RapidOCR, limit_type: str, side: float) -> None:
    """Make the engine's detector resize its input by this rule. (RapidOCR 1.4.4 honours the
    side length only for "min"; for "max" it picks 960, 1500 or 2000 by itself.)"""
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

    detector = engine.text_det
    detector.get_preprocess = lambda _longest: DetPreProcess(side, limit_type, detector.mean, detector.std)


def detection_size(width: int, height: int, max_pixels: int = DETECTION_PIXELS) -> tuple[str, float]:
    """The detector's input size rule for an image, as RapidOCR's (limit type, side length):
    its own (small images scaled up until the short side is 736 px) while that stays within
    `max_pixels`, else the size that holds `max_pixels` (up or down, aspect kept)."""
    pixels = width * height
    scale = max(1.0, DETECTION_SHORT_SIDE / min(width, height))
    if pixels * scale * scale <= max_pixels:
        return "min", DETECTION_SHORT_SIDE
    fit = math.sqrt(max_pixels / pixels)
    if fit < 1.0:
        return "max", max(width, height) * fit
    return "min", min(width, height) * fit


# --- Reading order ---------------------------------------------------------------------------

Box = tuple[Sequence[Sequence[float]], str, float]


@dataclass
class _Fragment:
    text: str
    left: float
    centre: float
    height: float


def text_in_reading_order(
    boxes: Sequence[Box], min_confidence: float = MIN_CONFIDENCE
) -> tuple[str, float | None, int]:
    """Join OCR boxes (four corner points, clockwise from the top left; text; confidence) into
    text: lines top to bottom, boxes left to right within a line. A box belongs to a line when
    its vertical centre is within half a text height of the line's. Boxes below
    `min_confidence` are dropped. Returns (text, mean confidence of the kept boxes, how many)."""
    fragments: list[_Fragment] = []
    scores: list[float] = []
    for points, text, score in boxes:
        text = text.strip()
        if score < min_confidence or not text:
            continue
        xs = [float(point[0]) for point in points]
        ys = [float(point[1]) for point in points]
        # The text's own height (left and right edges), not the box's extent, which grows with a tilt.
        height = (math.dist(points[0], points[3]) + math.dist(points[1], points[2])) / 2
        fragments.append(_Fragment(text, min(xs), sum(ys) / len(ys), max(height, 1.0)))
        scores.append(score)
    if not fragments:
        return "", None, 0

    lines: list[list[_Fragment]] = []
    for fragment in sorted(fragments, key=lambda f: f.centre):
        if lines:
            line = lines[-1]
            centre = sum(f.centre for f in line) / len(line)
            height = min(fragment.height, sum(f.height for f in line) / len(line))
            if abs(fragment.centre - centre) <= height / 2:
                line.append(fragment)
                continue
        lines.append([fragment])

    text = "\n".join(_join_line([f.text for f in sorted(line, key=lambda f: f.left)]) for line in lines)
    return text, sum(scores) / len(scores), len(scores)


def _join_line(parts: list[str]) -> str:
    """Words of a line: a space between Latin words, nothing between CJK characters or next to
    CJK punctuation (a line may mix them: "会议 moved 到周五")."""
    joined = parts[0]
    for part in parts[1:]:
        before, after = joined[-1], part[0]
        tight = _is_cjk_punctuation(before) or _is_cjk_punctuation(after) or (_is_cjk(before) and _is_cjk(after))
        joined += part if tight else " " + part
    return joined


def _is_cjk(char: str) -> bool:
    """Han, kana and full-width forms: scripts written without spaces between words."""
    code = ord(char)
    return (
        0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0x3400 <= code <= 0x4DBF  # Han extension A
        or 0x4E00 <= code <= 0x9FFF  # Han
        or 0xF900 <= code <= 0xFAFF  # Han compatibility
        or 0xFF00 <= code <= 0xFFEF  # full-width and half-width forms
        or 0x20000 <= code <= 0x3FFFF  # Han extensions B and on
        or _is_cjk_punctuation(char)
    )


def _is_cjk_punctuation(char: str) -> bool:
    code = ord(char)
    if 0x3000 <= code <= 0x303F:  # CJK symbols and punctuation: 。、「」
        return True
    # Full-width punctuation: ，：！？（）
    return 0xFF00 <= code <= 0xFFEF and unicodedata.category(char).startswith("P")
