"""Issue 12's extraction benchmark: offline OCR (`llm_service.app.extraction.ocr`) in this
process's event loop with a real `OcrPool` of one worker process, as the extraction worker
uses it.

- Images, made here with the CJK font Debian ships (fonts-noto-cjk): a 1080 × 2400 phone
  screenshot (PNG) full of mixed Chinese and English lines, and a 4000 × 3000 photo (JPEG,
  quality 90) of a noisy, photo-like scene with a sign and a poster on it.
- Seconds per image through `OcrPool.read` (handing the bytes to the worker, decoding,
  EXIF, downscaling to the pixel budget, detection, recognition, reading order), p50 and p95
  over `ROUNDS` reads each after a warm-up read, and the worker's CPU time (the worker runs
  at a lower priority, so a busy machine stretches the wall time). Target: screenshot
  p50 < 1.5 s.
- How much of the drawn text came back (characters matched in order, spaces ignored).
- The worker's peak RSS (its own `ru_maxrss`, after every read). Target < 600 MB.
- The first read of a new pool: starting the worker and loading the engine.
- The event loop's worst lag (a 5 ms timer) while a screenshot is read in the worker, and
  for comparison while one is read in a thread of this process: why the pool uses processes.

`python -m bench extraction` runs it alone. The queue's throughput (jobs through the durable
queue and the extraction worker) is measured by `queue_rows`.
"""

from __future__ import annotations

import asyncio
import difflib
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from bench import Row
from llm_service.app.extraction.ocr import OcrPool, OcrResult, read_image
from llm_service.tests.text_images import NEEDS_FONT, cjk_font_path, encoded

ROUNDS = 10
SCREENSHOT_SIZE = (1080, 2400)
PHOTO_SIZE = (4000, 3000)
SCREENSHOT_P50_TARGET = 1.5
RSS_TARGET_MB = 600
RECALL_TARGET = 0.9
PHRASES = [
    "周五下午三点 meeting with 产品组",
    "Q3 roadmap 评审改到下周一",
    "记得带 MacBook 充电器",
    "预算表 v2 已发到邮箱 budget@example.com",
    "晚上 7:30 和小王吃火锅",
    "Deploy 上线流程需要 review",
    "机票 CA1234 北京 → 上海 08:15",
    "读书笔记：《长安的荔枝》第三章",
    "Invoice #20261206 paid ¥1,280.00",
    "明天早上九点体检，空腹",
    "Weekly sync moved to Thursday 10am",
    "快递已放在前台，取件码 5821",
    "会议纪要 draft 请在周三前确认",
    "健身房 leg day 深蹲 5×5",
    "Coffee with Lisa at 星巴克 国贸店",
    "房租 due on the 15th 记得转账",
]


def _log(message: str) -> None:
    print(f"bench: extraction: {message}", file=sys.stderr, flush=True)


def screenshot(font_path: str) -> tuple[bytes, list[str]]:
    """A phone screenshot: a status bar, then lines of chat-like text in two sizes."""
    rng = random.Random(12)
    width, height = SCREENSHOT_SIZE
    image = Image.new("RGB", SCREENSHOT_SIZE, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    big, small = ImageFont.truetype(font_path, 40), ImageFont.truetype(font_path, 30)
    lines = ["09:41 5G 87%"]
    draw.text((48, 24), lines[0], font=small, fill=(0, 0, 0))
    draw.line((0, 96, width, 96), fill=(220, 220, 220), width=2)
    y = 130
    while y < height - 80:
        phrase = rng.choice(PHRASES)
        font = small if rng.random() < 0.3 else big
        if rng.random() < 0.5:  # a chat bubble behind the line
            box = draw.textbbox((60, y), phrase, font=font)
            draw.rounded_rectangle((box[0] - 20, box[1] - 14, box[2] + 20, box[3] + 14), 18, fill=(232, 245, 233))
        draw.text((60, y), phrase, font=font, fill=(30, 30, 30))
        lines.append(phrase)
        y += 66 if font is big else 54
    return encoded(image), lines


def photo(font_path: str) -> tuple[bytes, list[str]]:
    """A photo-like picture: a gradient scene with sensor noise and soft shapes, a shop sign
    and a poster with smaller text."""
    rng = random.Random(12)
    width, height = PHOTO_SIZE
    sky = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    scene = Image.merge(
        "RGB",
        [band.point(lambda v, k=k: int(v * k) + 40) for band, k in zip(sky.split(), (0.5, 0.6, 0.8), strict=True)],
    )
    draw = ImageDraw.Draw(scene)
    for _ in range(40):
        x, y, r = rng.randrange(width), rng.randrange(height), rng.randrange(60, 400)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(40, 220) for _ in range(3)))
    scene = scene.filter(ImageFilter.GaussianBlur(12))
    noise = Image.effect_noise((width, height), 24).convert("RGB")
    scene = Image.blend(scene, noise, 0.12)
    draw = ImageDraw.Draw(scene)
    sign = [("咖啡店 Coffee Shop", 150, (900, 500)), ("营业时间 08:00-22:00", 90, (980, 720))]
    poster = [(phrase, 56, (2500, 1500 + 90 * n)) for n, phrase in enumerate(PHRASES[:8])]
    draw.rectangle((820, 420, 2480, 880), fill=(245, 240, 230))
    draw.rectangle((2440, 1440, 3900, 2280), fill=(250, 250, 250))
    for text, size, position in sign + poster:
        draw.text(position, text, font=ImageFont.truetype(font_path, size), fill=(25, 25, 25))
    return encoded(scene, "JPEG", quality=90), [text for text, _, _ in sign + poster]


def recall(truth: Sequence[str], read: str) -> float:
    """How many of the drawn characters came back, in order (spaces ignored)."""
    expected = "".join("".join(truth).split())
    got = "".join(read.split())
    matcher = difflib.SequenceMatcher(None, expected, got, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(expected)


def _cpu_seconds() -> float:
    """This process's CPU time, all its threads (run in the worker)."""
    return time.process_time()


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (run in the worker)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def _worst_lag(work: Callable[[], Awaitable[Any]]) -> float:
    """The longest a 5 ms timer of this loop overslept while `work` ran, in ms."""
    worst = 0.0
    done = False

    async def tick() -> None:
        nonlocal worst
        while not done:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, time.perf_counter() - started - 0.005)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    try:
        await work()
    finally:
        done = True
        await ticker
    return worst * 1000


async def _measure(font_path: str) -> dict[str, Any]:
    images = {"screenshot": screenshot(font_path), "photo": photo(font_path)}
    for name, (data, lines) in images.items():
        _log(f"{name}: {len(data) / 1e6:.1f} MB, {len(lines)} lines of text")
    found: dict[str, Any] = {"times": {}, "cpu": {}, "recall": {}, "read_size": {}}
    pool = OcrPool(max_workers=1)
    try:
        started = time.perf_counter()
        await pool.read(images["screenshot"][0])
        found["cold"] = time.perf_counter() - started
        _log(f"first read (start the worker, load the engine): {found['cold']:.2f} s")
        for name, (data, lines) in images.items():
            result: OcrResult = await pool.read(data)  # warm-up
            found["recall"][name] = recall(lines, result.text)
            found["read_size"][name] = result.size
            times, cpu = [], []
            for _ in range(ROUNDS):
                cpu_before = await pool.run(_cpu_seconds)
                started = time.perf_counter()
                result = await pool.read(data)
                times.append(time.perf_counter() - started)
                cpu.append(await pool.run(_cpu_seconds) - cpu_before)
            found["times"][name], found["cpu"][name] = times, cpu
            _log(f"{name}: p50 {_percentile(times, 0.5):.2f} s, read at {result.size[0]}×{result.size[1]}")
        found["rss"] = await pool.run(_peak_rss)
        data = images["screenshot"][0]
        found["lag_process"] = await _worst_lag(lambda: pool.read(data))
    finally:
        pool.close()
    read_image(images["screenshot"][0])  # load the engine in this process, outside the timing
    found["lag_thread"] = await _worst_lag(lambda: asyncio.to_thread(read_image, data))
    return found


def _load_average() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def queue_rows() -> list[Row]:
    """Rows for the extraction queue's throughput (jobs through the durable queue and the
    worker); this module measures the engines only, so it has none of its own."""
    return []


def run() -> list[Row]:
    font_path = cjk_font_path()
    if font_path is None:
        return [Row("extraction: OCR", f"not measured ({NEEDS_FONT})"), *queue_rows()]
    before = _load_average()
    found = asyncio.run(_measure(font_path))
    machine = f"{os.cpu_count()} cores; load average (1/5/15 min) {before} before, {_load_average()} after"
    rows = [
        Row("extraction: machine", machine),
        Row("OCR: first read of a new pool (start worker, load engine)", f"{found['cold']:.2f} s"),
    ]
    for name, size in (("screenshot", SCREENSHOT_SIZE), ("photo", PHOTO_SIZE)):
        times, cpu = found["times"][name], found["cpu"][name]
        p50, p95 = _percentile(times, 0.5), _percentile(times, 0.95)
        read_w, read_h = found["read_size"][name]
        label = f"OCR {name} {size[0]}×{size[1]} (read at {read_w}×{read_h})"
        # CPU time counts every onnxruntime thread: about twice the time on an idle machine.
        measured = f"p50 {p50:.2f} s, p95 {p95:.2f} s (worker CPU p50 {statistics.median(cpu):.2f} s)"
        if name == "screenshot":
            rows.append(Row(label, measured, f"p50 < {SCREENSHOT_P50_TARGET:g} s", p50 < SCREENSHOT_P50_TARGET))
        else:
            rows.append(Row(label, measured))
        share = found["recall"][name]
        rows.append(
            Row(f"OCR {name}: drawn characters read", f"{share:.1%}", f">= {RECALL_TARGET:.0%}", share >= RECALL_TARGET)
        )
    rss_mb = found["rss"] / 2**20
    rows += [
        Row("OCR worker peak RSS", f"{rss_mb:.0f} MB", f"< {RSS_TARGET_MB} MB", rss_mb < RSS_TARGET_MB),
        Row("event loop worst lag while OCR runs in the worker", f"{found['lag_process']:.1f} ms"),
        Row("(for comparison) ... while OCR runs in a thread", f"{found['lag_thread']:.1f} ms"),
    ]
    return rows + queue_rows()
