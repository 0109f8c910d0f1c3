"""Issue 3's and issue 11's benchmarks: what authentication and forwarding cost.

- Auth overhead per request (issue 11): what `CurrentUser` (JWT or API token verified, session,
  denylist and standing checked in Redis, the per-user rate limit counted) adds to a request,
  for an access token and for an API token, against the same app's anonymous route (both do
  nothing else), in-process on the launched instance's database and Redis: the difference of
  the medians one request at a time (latency), and of this process's CPU time per request
  with 16 at once (what bounds throughput; unlike wall time, not inflated by whatever else
  the machine runs). Beside it, the Redis round trips per request, counted as redis-py sends
  them (`tests/round_trips.py`), not assumed. Target: under 1 ms both ways, and 1 round trip.
- Auth throughput: `GET /api/v1/users/me` (authentication as above, then the user read from
  the database) against `GET /health` on the same user_service, requests per second at 16
  concurrent clients. Target: ratio >= 0.5.
- Forwarding: the same `/users/me` through mobile_service (which relays it to user_service)
  against straight to user_service, one request at a time, interleaved; the difference of
  the medians. Target: under 3 ms.

They run against the real launcher (user and mobile only) on free ports; the per-user rate
limit is raised so the load is not refused.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import APIRouter, FastAPI

from bench import Row
from bench._launcher import LauncherProcess
from common.app import create_service_app
from common.config import JiluSettings
from common.deps import CurrentUser
from tests.round_trips import counting_round_trips
from tests.support import app_client

CONCURRENCY = 16
REQUESTS = 3000
WARM_UP = 300
LATENCY_SAMPLES = 400
RATIO_TARGET = 0.5
FORWARDING_TARGET_MS = 3.0
PASSWORD = "correct horse battery 9"
USER_RATE = "100000000/minute"
PROBE_REQUESTS = 1500
OVERHEAD_TARGET_MS = 1.0
ROUND_TRIPS_TARGET = 1
CPU_ROUNDS = 3


def _log(message: str) -> None:
    print(f"bench: auth: {message}", file=sys.stderr, flush=True)


def _login(base_url: str) -> tuple[str, str]:
    """A new user's access token and a personal API token of theirs."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        client.post("/api/v1/auth/register", json={"username": "bench", "password": PASSWORD}).raise_for_status()
        response = client.post("/api/v1/auth/token", data={"username": "bench", "password": PASSWORD})
        response.raise_for_status()
        access = response.json()["access_token"]
        created = client.post(
            "/api/v1/users/me/api-tokens", json={"name": "bench"}, headers={"Authorization": f"Bearer {access}"}
        )
        created.raise_for_status()
        return access, created.json()["token"]


def _probe_app(settings: JiluSettings) -> FastAPI:
    """A service app (the same middleware, state and dependencies) with two routes that do
    nothing but answer: one anonymous, one behind `CurrentUser`."""
    router = APIRouter()

    @router.get("/bench/anonymous")
    async def anonymous() -> dict[str, str]:
        return {"user": ""}

    @router.get("/bench/authenticated")
    async def authenticated(user: CurrentUser) -> dict[str, str]:
        return {"user": user.id}

    return create_service_app("user_service", settings, routers=[router])


@dataclass(frozen=True)
class AuthCost:
    """What `CurrentUser` adds to a request with one kind of token."""

    alone_ms: float  # to the median request, one at a time
    cpu_ms: float  # to the CPU time a request takes, CONCURRENCY at once
    round_trips: float  # Redis round trips a request, as sent

    @property
    def ok(self) -> bool:
        return max(self.alone_ms, self.cpu_ms) < OVERHEAD_TARGET_MS and self.round_trips <= ROUND_TRIPS_TARGET


async def _auth_costs(settings: JiluSettings, tokens: dict[str, str]) -> dict[str, AuthCost]:
    """`AuthCost` for each kind of token in `tokens`, against the same app's anonymous route.
    The routes take turns, so a change in the machine's load reaches them alike."""
    paths = {"anonymous": "/bench/anonymous", **{kind: "/bench/authenticated" for kind in tokens}}
    headers = {"anonymous": {}, **{kind: {"Authorization": f"Bearer {token}"} for kind, token in tokens.items()}}
    samples: dict[str, list[float]] = {kind: [] for kind in paths}
    trips = dict.fromkeys(paths, 0)
    cpu = dict.fromkeys(paths, 0.0)
    async with app_client(_probe_app(settings)) as client:

        async def get(kind: str) -> None:
            response = await client.get(paths[kind], headers=headers[kind])
            if response.status_code != 200:
                raise RuntimeError(f"{paths[kind]} ({kind}) answered {response.status_code}: {response.text[:200]}")

        for round_number in range(WARM_UP + PROBE_REQUESTS):
            for kind in paths:
                with counting_round_trips() as counter:
                    started = time.perf_counter()
                    await get(kind)
                    elapsed = time.perf_counter() - started
                if round_number >= WARM_UP:
                    samples[kind].append(elapsed * 1000)
                    trips[kind] += counter.count
        per_client = PROBE_REQUESTS // CONCURRENCY
        for _ in range(CPU_ROUNDS):
            for kind in paths:

                async def client_loop(kind: str = kind) -> None:
                    for _ in range(per_client):
                        await get(kind)

                started = time.process_time()
                await asyncio.gather(*(client_loop() for _ in range(CONCURRENCY)))
                cpu[kind] += (time.process_time() - started) * 1000 / (per_client * CONCURRENCY * CPU_ROUNDS)
    floor = statistics.median(samples["anonymous"])
    return {
        kind: AuthCost(
            alone_ms=statistics.median(samples[kind]) - floor,
            cpu_ms=cpu[kind] - cpu["anonymous"],
            round_trips=trips[kind] / PROBE_REQUESTS,
        )
        for kind in tokens
    }


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
    env = {"JILU_RATE_USER": USER_RATE, "JILU_RATE_LOGIN_ADDRESS": "1000/minute"}
    with (
        tempfile.TemporaryDirectory(prefix="jilu-bench-") as tmp,
        LauncherProcess(Path(tmp) / "data", services=("user", "mobile"), extra_env=env) as jilu,
    ):
        jilu.wait_up()
        user, mobile = jilu.url("user"), jilu.url("mobile")
        access, api_token = _login(user)
        headers = {"Authorization": f"Bearer {access}"}
        # The launched instance's database, Redis and secret; nothing from the environment.
        settings = JiluSettings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=jilu.data_dir,
            database_url="",
            redis_url=jilu.redis_url,
            secret_key=None,
            rate_user=USER_RATE,
        )
        costs = asyncio.run(_auth_costs(settings, {"access token": access, "API token": api_token}))
        for kind, cost in costs.items():
            _log(
                f"{kind}: authentication adds {cost.alone_ms:.2f} ms to the median request, {cost.cpu_ms:.2f} ms "
                f"of CPU to each of {CONCURRENCY} at once; {cost.round_trips:.2f} Redis round trips a request"
            )
        health_rps = asyncio.run(_throughput(f"{user}/health", headers))
        me_rps = asyncio.run(_throughput(f"{user}/api/v1/users/me", headers))
        _log(f"/health {health_rps:.0f} req/s, /users/me {me_rps:.0f} req/s")
        direct_ms, forwarded_ms = _median_latencies_ms(f"{user}/api/v1/users/me", f"{mobile}/api/v1/users/me", headers)
        _log(f"/users/me median {direct_ms:.2f} ms direct, {forwarded_ms:.2f} ms through mobile")
    ratio = me_rps / health_rps
    added = forwarded_ms - direct_ms
    overhead_rows = [
        Row(
            f"auth + rate limit, {kind}: latency / CPU added; Redis round trips",
            f"{cost.alone_ms:.2f} / {cost.cpu_ms:.2f} ms; {cost.round_trips:.2f}",
            f"< {OVERHEAD_TARGET_MS:g} ms; {ROUND_TRIPS_TARGET}",
            cost.ok,
        )
        for kind, cost in costs.items()
    ]
    return [
        *overhead_rows,
        Row("user_service /health", f"{health_rps:.0f} req/s ({CONCURRENCY} clients)"),
        Row("user_service /api/v1/users/me", f"{me_rps:.0f} req/s ({CONCURRENCY} clients)"),
        Row(
            "auth overhead: /users/me ÷ /health (time a request added, the user's read included)",
            f"{ratio:.2f} (+{1000 / me_rps - 1000 / health_rps:.2f} ms)",
            f">= {RATIO_TARGET}",
            ratio >= RATIO_TARGET,
        ),
        Row("/users/me median, direct", f"{direct_ms:.2f} ms"),
        Row("/users/me median, through mobile", f"{forwarded_ms:.2f} ms"),
        Row(
            "forwarding adds (median)",
            f"{added:.2f} ms",
            f"< {FORWARDING_TARGET_MS:g} ms",
            added < FORWARDING_TARGET_MS,
        ),
    ]
