"""Issue 3's benchmarks: what authentication and forwarding cost.

- Auth overhead: `GET /api/v1/users/me` (JWT verified, Redis session/denylist/standing
  checked, per-user rate limit counted, the user read from the database) against
  `GET /health` on the same user_service, requests per second at 16 concurrent clients.
  Target: ratio >= 0.5.
- Forwarding: the same `/users/me` through mobile_service (which relays it to user_service)
  against straight to user_service, one request at a time, interleaved; the difference of
  the medians. Target: under 3 ms.

Both run against the real launcher (user and mobile only) on free ports; the per-user rate
limit is raised so the load is not refused.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import Row
from bench._launcher import LauncherProcess

CONCURRENCY = 16
REQUESTS = 3000
WARM_UP = 300
LATENCY_SAMPLES = 400
RATIO_TARGET = 0.5
FORWARDING_TARGET_MS = 3.0
PASSWORD = "correct horse battery 9"


def _log(message: str) -> None:
    print(f"bench: auth: {message}", file=sys.stderr, flush=True)


def _login(base_url: str) -> dict[str, str]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        client.post("/api/v1/auth/register", json={"username": "bench", "password": PASSWORD}).raise_for_status()
        response = client.post("/api/v1/auth/token", data={"username": "bench", "password": PASSWORD})
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _throughput(url: str, headers: dict[str, str]) -> float:
    """Requests per second for `REQUESTS` GETs of `url` from `CONCURRENCY` clients."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:

        async def worker(count: int) -> None:
            for _ in range(count):
                response = await client.get(url)
                if response.status_code != 200:
                    raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")

        await asyncio.gather(*(worker(WARM_UP // CONCURRENCY) for _ in range(CONCURRENCY)))
        started = time.perf_counter()
        await asyncio.gather(*(worker(REQUESTS // CONCURRENCY) for _ in range(CONCURRENCY)))
        return (REQUESTS // CONCURRENCY * CONCURRENCY) / (time.perf_counter() - started)


def _median_latencies_ms(direct: str, forwarded: str, headers: dict[str, str]) -> tuple[float, float]:
    samples: dict[str, list[float]] = {direct: [], forwarded: []}
    with httpx.Client(headers=headers, timeout=30) as client:
        for _ in range(LATENCY_SAMPLES):
            for url in (direct, forwarded):
                started = time.perf_counter()
                client.get(url).raise_for_status()
                samples[url].append((time.perf_counter() - started) * 1000)
    return statistics.median(samples[direct]), statistics.median(samples[forwarded])


def run() -> list[Row]:
    env = {"JILU_RATE_USER": "100000000/minute", "JILU_RATE_LOGIN_ADDRESS": "1000/minute"}
    with (
        tempfile.TemporaryDirectory(prefix="jilu-bench-") as tmp,
        LauncherProcess(Path(tmp) / "data", services=("user", "mobile"), extra_env=env) as jilu,
    ):
        jilu.wait_up()
        user, mobile = jilu.url("user"), jilu.url("mobile")
        headers = _login(user)
        health_rps = asyncio.run(_throughput(f"{user}/health", headers))
        me_rps = asyncio.run(_throughput(f"{user}/api/v1/users/me", headers))
        _log(f"/health {health_rps:.0f} req/s, /users/me {me_rps:.0f} req/s")
        direct_ms, forwarded_ms = _median_latencies_ms(f"{user}/api/v1/users/me", f"{mobile}/api/v1/users/me", headers)
        _log(f"/users/me median {direct_ms:.2f} ms direct, {forwarded_ms:.2f} ms through mobile")
    ratio = me_rps / health_rps
    added = forwarded_ms - direct_ms
    return [
        Row("user_service /health", f"{health_rps:.0f} req/s ({CONCURRENCY} clients)"),
        Row("user_service /api/v1/users/me", f"{me_rps:.0f} req/s ({CONCURRENCY} clients)"),
        Row("auth overhead: /users/me ÷ /health", f"{ratio:.2f}", f">= {RATIO_TARGET}", ratio >= RATIO_TARGET),
        Row("/users/me median, direct", f"{direct_ms:.2f} ms"),
        Row("/users/me median, through mobile", f"{forwarded_ms:.2f} ms"),
        Row(
            "forwarding adds (median)",
            f"{added:.2f} ms",
            f"< {FORWARDING_TARGET_MS:g} ms",
            added < FORWARDING_TARGET_MS,
        ),
    ]
