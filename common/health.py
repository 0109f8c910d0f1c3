"""`GET /health` (liveness) and `GET /health/ready` (database, Redis, dependencies)."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import common
from common.api_clients import ServiceClient
from common.deps import EngineDep, RedisDep, ServicesDep

READY_TIMEOUT = 3.0


class Health(BaseModel):
    status: Literal["ok"]
    service: str
    version: str


class Readiness(BaseModel):
    status: Literal["ready"]
    service: str
    checks: dict[str, str]


class NotReady(BaseModel):
    error: Literal["not_ready"]
    detail: str
    checks: dict[str, str]


async def _check_database(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _check_redis(redis: Redis) -> None:
    await redis.ping()


async def _check_service(service: ServiceClient) -> None:
    if not await service.is_healthy(timeout=READY_TIMEOUT):
        raise ConnectionError(f"{service.service} does not answer /health")


async def _outcome(check: asyncio.Future[None] | object) -> str:
    try:
        await asyncio.wait_for(check, READY_TIMEOUT)  # type: ignore[arg-type]
    except TimeoutError:
        return "failed: timed out"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", named below
        return f"failed: {type(exc).__name__}"
    return "ok"


def health_router(service: str, depends_on: tuple[str, ...]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health", response_model=Health)
    async def health() -> Health:
        """Liveness: the process is up and serving."""
        return Health(status="ok", service=service, version=common.__version__)

    @router.get("/health/ready", response_model=Readiness, responses={503: {"model": NotReady}})
    async def ready(engine: EngineDep, redis: RedisDep, services: ServicesDep) -> Readiness | JSONResponse:
        """Readiness: the database, Redis and every service this one calls answer."""
        names = ["database", "redis", *(f"{dep}_service" for dep in depends_on)]
        checks = [_check_database(engine), _check_redis(redis)]
        checks += [_check_service(services[dep]) for dep in depends_on]
        results = dict(zip(names, await asyncio.gather(*(_outcome(c) for c in checks)), strict=True))
        failed = [name for name, result in results.items() if result != "ok"]
        if failed:
            body = NotReady(error="not_ready", detail=f"not ready: {', '.join(failed)}", checks=results)
            return JSONResponse(body.model_dump(), status_code=503)
        return Readiness(status="ready", service=service, checks=results)

    return router
