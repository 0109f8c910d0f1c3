"""The web app in a real headless Chromium (Debian's `chromium`, driven by Playwright for
Python; no browser is ever downloaded), against the real launcher with every service.

One user with 1,000 records (pushed through `POST /api/v1/sync/push` in batches of 500, over
the last 100 days), their AI analysis finished before anything is timed.

1. First meaningful paint of the timeline (`/#/`, signed in by the refresh cookie and the
   profile the app remembers, taken over from a login in another context): from the
   navigation's start, Chromium's `first-contentful-paint` (a `PerformanceObserver` for
   'paint') and the moment the first record card (`article.record-card`) is in the page and
   a frame has been painted with it (a `MutationObserver` and `requestAnimationFrame`, in an
   init script). Cold: a new browser context each time (empty HTTP cache, no service
   worker); warm: a reload in the same context. Medians of 5 of each.
2. Bytes transferred by a cold load of that timeline: every response the context received
   (the page's and the service worker's own fetches, i.e. its install-time precache of the
   app; answers a service worker served from its cache are not counted twice), headers plus
   encoded (compressed) body as Chromium reports them, until the first card shows and the
   page has been quiet for a second. Target: under 250 KB, vendor code included. Also shown:
   the static files alone, the worker's share, and the load without it.
3. From a create on the mobile port (`POST /api/v1/records`, plain httpx with the user's
   token) to the record's title in the open timeline, which is never reloaded: the wall
   clock before the request (this process) against the wall clock when a `MutationObserver`
   in the page sees the title, 30 samples one after another; p50 and p95, target p95 under
   1 s.

Without Chromium it prints one row saying so.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench import Row
from bench._launcher import LauncherProcess
from common.database.ids import new_id
from tests.web.browser import find_chromium, launch_chromium

PASSWORD = "correct horse battery 9"
RECORDS = 1000
PUSH_BATCH = 500
PAINT_SAMPLES = 5
LIVE_SAMPLES = 30
BYTES_TARGET = 250 * 1024
LIVE_P95_TARGET_MS = 1000.0
CARD = "article.record-card"
ANALYSIS_WAIT_S = 300.0

# Runs in every page before the app: when FCP happened, and when the first card was painted.
PAINT_PROBE = """
(() => {
  const CARD = '__CARD__';
  const bench = (window.__bench = { fcp: null, card: null });
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (entry.name === 'first-contentful-paint') bench.fcp = entry.startTime;
    }
  }).observe({ type: 'paint', buffered: true });
  const observer = new MutationObserver(() => {
    if (bench.card !== null || !document.querySelector(CARD)) return;
    bench.card = -1;
    observer.disconnect();
    requestAnimationFrame(() => { bench.card = performance.now(); });
  });
  observer.observe(document, { childList: true, subtree: true });
})();
""".replace("__CARD__", CARD)

# Sets `window.__seenAt` to the wall-clock time (ms) at which `marker` first appears in <main>.
WATCH_FOR = """
(marker) => {
  window.__seenAt = null;
  const check = () => {
    const root = document.querySelector('main');
    if (window.__seenAt === null && root && root.textContent.includes(marker)) {
      window.__seenAt = performance.timeOrigin + performance.now();
      observer.disconnect();
    }
  };
  const observer = new MutationObserver(check);
  observer.observe(document.body, { childList: true, subtree: true, characterData: true });
  check();
}
"""

WORDS = [
    "今天和团队讨论了项目预算",
    "下午去公园散步，天气很好",
    "读完了一本关于时间管理的书",
    "Weekly planning with the design team",
    "买了新的咖啡豆，味道不错",
    "记录一下周末的旅行计划",
    "Fixed the login bug before lunch",
    "晚上和朋友一起吃火锅",
]


def _log(message: str) -> None:
    print(f"bench: web: {message}", file=sys.stderr, flush=True)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _prepare(http: httpx.Client, web: str, mobile: str) -> dict[str, str]:
    """The user, their 1,000 records, and their analysis finished; answers the auth header."""
    response = http.post(f"{web}/api/v1/auth/register", json={"username": "bench", "password": PASSWORD})
    response.raise_for_status()
    token = http.post(f"{mobile}/api/v1/auth/token", data={"username": "bench", "password": PASSWORD})
    token.raise_for_status()
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    http.patch(f"{mobile}/api/v1/users/me", json={"language": "en"}, headers=headers).raise_for_status()
    now = datetime.now(UTC)
    items = []
    for number in range(RECORDS):
        occurred = now - timedelta(minutes=144 * number)
        text = WORDS[number % len(WORDS)]
        items.append(
            {
                "id": new_id(),
                "op": "upsert",
                "base_version": 0,
                "data": {
                    "kind": "diary" if number % 3 == 0 else "note",
                    "title": f"{text} #{number}",
                    "content": f"{text}。\n\n- 第 {number} 条记录\n- {WORDS[(number + 3) % len(WORDS)]}",
                    "tags": [f"tag{number % 7}"],
                    "occurred_at": occurred.isoformat(),
                },
            }
        )
    started = time.perf_counter()
    for start in range(0, RECORDS, PUSH_BATCH):
        batch = items[start : start + PUSH_BATCH]
        response = http.post(
            f"{mobile}/api/v1/sync/push", json={"device_id": "bench", "items": batch}, headers=headers, timeout=300
        )
        response.raise_for_status()
        statuses = {result["status"] for result in response.json()["results"]}
        if statuses != {"applied"}:
            raise RuntimeError(f"sync push answered {statuses}: {response.text[:300]}")
    _log(f"{RECORDS} records pushed in {time.perf_counter() - started:.1f}s; waiting for their analysis")
    _wait_for_analysis(http, mobile, headers)
    return headers


def _wait_for_analysis(http: httpx.Client, mobile: str, headers: dict[str, str]) -> None:
    """Until no record's analysis is queued or running (so it does not run during the
    measurements), or ANALYSIS_WAIT_S have passed."""
    started = time.perf_counter()
    busy = -1
    while time.perf_counter() - started < ANALYSIS_WAIT_S:
        busy, cursor = 0, None
        while True:
            params: dict[str, Any] = {"limit": 200}
            if cursor:
                params["cursor"] = cursor
            page = http.get(f"{mobile}/api/v1/records", params=params, headers=headers).json()
            busy += sum(
                1 for record in page["items"] if (record.get("ai") or {}).get("status") in ("pending", "running")
            )
            cursor = page.get("next_cursor")
            if not cursor:
                break
        if busy == 0:
            _log(f"analysis done after {time.perf_counter() - started:.0f}s")
            return
        time.sleep(2)
    _log(f"{busy} analyses still unfinished after {ANALYSIS_WAIT_S:.0f}s; measuring anyway")


def _signed_in_context(browser: Any, web: str) -> Any:
    """A new context (empty HTTP cache, no service worker) that the app opens signed in: the
    refresh cookie and the profile the app remembers (IndexedDB) of a login through the login
    page in another context, taken over with `storage_state`."""
    options = {"base_url": web, "locale": "en-US", "viewport": {"width": 1280, "height": 800}}
    setup = browser.new_context(**options)
    try:
        page = setup.new_page()
        page.goto("/#/login")
        page.get_by_label("Username", exact=True).fill("bench")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Log in", exact=True).click()
        page.locator(CARD).first.wait_for(state="visible", timeout=60_000)
        state = setup.storage_state(indexed_db=True)
    finally:
        setup.close()
    context = browser.new_context(storage_state=state, **options)
    context.set_default_timeout(60_000)
    context.add_init_script(PAINT_PROBE)
    return context


def _paint(page: Any) -> tuple[float, float]:
    page.locator(CARD).first.wait_for(state="visible")
    page.wait_for_function("() => window.__bench.card > 0 && window.__bench.fcp !== null")
    marks = page.evaluate("() => window.__bench")
    return float(marks["fcp"]), float(marks["card"])


# Where a load's time went: when the last script module, the session refresh, /users/me and
# the first page of records had arrived (ms from the navigation's start).
MILESTONES = """() => {
  const done = (test) => Math.max(0, ...performance.getEntriesByType('resource')
    .filter((entry) => test(entry.name)).map((entry) => entry.responseEnd));
  return {
    modules: done((url) => /\\.m?js$/.test(url)),
    refresh: done((url) => url.includes('/api/v1/auth/session/refresh')),
    me: done((url) => url.includes('/api/v1/users/me')),
    records: done((url) => url.includes('/api/v1/records?')),
  };
}"""


def _paints(browser: Any, web: str) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"cold fcp": [], "cold card": [], "warm fcp": [], "warm card": []}
    for _ in range(PAINT_SAMPLES):
        context = _signed_in_context(browser, web)
        try:
            page = context.new_page()
            page.goto("/#/")
            fcp, card = _paint(page)
            found["cold fcp"].append(fcp)
            found["cold card"].append(card)
            marks = page.evaluate(MILESTONES)
            _log("cold: " + ", ".join(f"{k} {v:.0f}" for k, v in marks.items()) + f", card {card:.0f} (ms)")
            page.reload()
            fcp, card = _paint(page)
            found["warm fcp"].append(fcp)
            found["warm card"].append(card)
        finally:
            context.close()
    return found


def _cold_bytes(browser: Any, web: str) -> dict[str, int]:
    """Bytes (headers and encoded bodies) one cold load received: `total`, `static` (the app's
    files), `worker` (fetched by the service worker itself, its precache), and `responses`."""
    context = _signed_in_context(browser, web)
    counted: list[tuple[str, int, bool]] = []

    def finished(request: Any) -> None:
        response = request.response()
        if response is None or response.from_service_worker:
            return
        sizes = request.sizes()
        size = int(sizes["responseBodySize"]) + int(sizes["responseHeadersSize"])
        counted.append((request.url, size, request.service_worker is not None))

    context.on("requestfinished", finished)
    try:
        page = context.new_page()
        page.goto("/#/")
        page.locator(CARD).first.wait_for(state="visible")
        page.evaluate(
            "() => navigator.serviceWorker && navigator.serviceWorker.getRegistration()"
            ".then((r) => r && navigator.serviceWorker.ready)"
        )
        quiet_until = time.perf_counter() + 1.0
        seen = len(counted)
        while time.perf_counter() < quiet_until:  # a second without a new response
            page.wait_for_timeout(100)
            if len(counted) != seen:
                seen = len(counted)
                quiet_until = time.perf_counter() + 1.0
    finally:
        context.close()
    for url, size, by_worker in sorted(counted, key=lambda item: -item[1])[:6]:
        _log(f"  {size / 1024:7.1f} KB  {'(worker) ' if by_worker else ''}{url.split('/', 3)[-1][:90]}")
    return {
        "total": sum(size for _, size, _ in counted),
        "static": sum(size for url, size, _ in counted if "/api/" not in url),
        "worker": sum(size for _, size, by_worker in counted if by_worker),
        "responses": len(counted),
    }


def _live(browser: Any, web: str, mobile: str, headers: dict[str, str], http: httpx.Client) -> list[float]:
    context = _signed_in_context(browser, web)
    samples: list[float] = []
    try:
        page = context.new_page()
        page.goto("/#/")
        page.locator(CARD).first.wait_for(state="visible")
        for number in range(LIVE_SAMPLES):
            marker = f"live-{number}-{new_id()[-8:]}"
            page.evaluate(WATCH_FOR, marker)
            sent = time.time() * 1000
            response = http.post(
                f"{mobile}/api/v1/records",
                json={"kind": "note", "title": marker, "content": f"{marker} 从手机端创建"},
                headers=headers,
            )
            response.raise_for_status()
            seen = page.wait_for_function("() => window.__seenAt", timeout=30_000).json_value()
            samples.append(float(seen) - sent)
    finally:
        context.close()
    return samples


def run() -> list[Row]:
    chromium = find_chromium()
    if chromium is None:
        return [Row("web: skipped", "no Chromium found (apt install chromium)")]
    from playwright.sync_api import sync_playwright

    env = {
        "JILU_RATE_USER": "100000000/minute",
        "JILU_RATE_LOGIN_ADDRESS": "10000/minute",
        "JILU_RATE_LOGIN_USER": "10000/minute",
        "JILU_LLM_PROVIDER": "local",
    }
    with (
        tempfile.TemporaryDirectory(prefix="jilu-bench-") as tmp,
        LauncherProcess(Path(tmp) / "data", extra_env=env) as jilu,
        httpx.Client(timeout=60) as http,
    ):
        jilu.wait_up(120)
        web, mobile = jilu.url("web"), jilu.url("mobile")
        headers = _prepare(http, web, mobile)
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright, chromium)
            try:
                paints = _paints(browser, web)
                _log("paints (ms): " + ", ".join(f"{k} {[round(v) for v in vs]}" for k, vs in paints.items()))
                cold = _cold_bytes(browser, web)
                _log(f"cold load: {cold}")
                live = _live(browser, web, mobile, headers, http)
                _log(f"live (ms): {[round(v) for v in live]}")
            finally:
                browser.close()

    def median(key: str) -> str:
        return f"{statistics.median(paints[key]):.0f} ms"

    p50, p95 = _percentile(live, 0.5), _percentile(live, 0.95)
    return [
        Row(f"web timeline, {RECORDS} records: first contentful paint, cold", median("cold fcp")),
        Row(f"web timeline, {RECORDS} records: first card painted, cold", median("cold card")),
        Row(f"web timeline, {RECORDS} records: first contentful paint, warm", median("warm fcp")),
        Row(f"web timeline, {RECORDS} records: first card painted, warm", median("warm card")),
        Row(
            "web cold load: bytes transferred (compressed, all responses)",
            f"{cold['total'] / 1024:.1f} KB in {cold['responses']} responses",
            f"< {BYTES_TARGET // 1024} KB",
            cold["total"] < BYTES_TARGET,
        ),
        Row("web cold load: of which the app's static files", f"{cold['static'] / 1024:.1f} KB"),
        Row("web cold load: of which the service worker's own fetches", f"{cold['worker'] / 1024:.1f} KB"),
        Row(
            "web cold load: without the service worker's fetches",
            f"{(cold['total'] - cold['worker']) / 1024:.1f} KB",
        ),
        Row(f"web live: mobile create -> open timeline, p50 ({LIVE_SAMPLES} samples)", f"{p50:.0f} ms"),
        Row(
            f"web live: mobile create -> open timeline, p95 ({LIVE_SAMPLES} samples)",
            f"{p95:.0f} ms",
            f"< {LIVE_P95_TARGET_MS:.0f} ms",
            p95 < LIVE_P95_TARGET_MS,
        ),
    ]
