"""The typed state a service's lifespan builds: its resources and its long-lived collaborators.

`common.app.create_service_app` makes a `ServiceState` (engine, sessionmakers, Redis, HTTP
client, the other services, tokens, rate limits); a service that needs more extends it with
a subclass (`RecordsState` here, `LlmState`, `WebState`) in its `build_state`. Only the app
factory and the `deps.py` modules read it from the app: routes get its parts through the
dependency aliases, and services receive theirs as constructor arguments.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common.api_clients.services import ServiceDirectory
from common.config import JiluSettings
from common.database import Sessions
from common.queue import DurableQueue
from common.security.rate_limit import RateLimiter
from common.security.tokens import TokenCodec


@dataclass(frozen=True, kw_only=True)
class ServiceState:
    """What every service has while it runs; made and closed by the app's lifespan."""

    service: str  # `web_service`, ...: which port answers (`common.public_urls`)
    settings: JiluSettings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]  # reads
    write_sessionmaker: async_sessionmaker[AsyncSession]  # transactions that write
    redis: Redis
    http: httpx.AsyncClient
    services: ServiceDirectory
    tokens: TokenCodec
    rate_limiter: RateLimiter

    @property
    def sessions(self) -> Sessions:
        """Both sessionmakers, for collaborators that read and write outside a request."""
        return Sessions(read=self.sessionmaker, write=self.write_sessionmaker)

    def metric_queues(self) -> Sequence[DurableQueue]:
        """The durable queues whose depth this service's `/metrics` reports (`common.metrics`)."""
        return ()


@dataclass(frozen=True, kw_only=True)
class RecordsState(ServiceState):
    """A service that serves the record domain (web, mobile): also its trash sweeper."""

    trash_sweeper: asyncio.Task[None]


def state_fields(state: ServiceState) -> dict[str, Any]:
    """`state`'s fields by name, to build a subclass on it: `LlmState(**state_fields(base), ...)`
    (not `dataclasses.asdict`, which would copy every resource)."""
    return {field.name: getattr(state, field.name) for field in dataclasses.fields(state)}
