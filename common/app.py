"""The FastAPI app every service is built from: lifespan resources, middleware, errors, health."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from starlette.responses import Response

import common
from common import metrics, tracing
from common.api_clients import ServiceDirectory, create_http_client
from common.bodies import BodyGuardMiddleware
from common.cache import create_redis
from common.config import JiluSettings
from common.database import create_engine, create_sessionmaker, create_write_engine
from common.deps import SettingsDep, service_state
from common.errors import NotFound, install_error_handlers
from common.health import health_router
from common.middleware import AllowedMethodsMiddleware, RequestIdMiddleware, SecurityHeadersMiddleware
from common.openapi import generate_operation_id, install_openapi
from common.security.rate_limit import RateLimiter
from common.security.tokens import TokenCodec
from common.state import ServiceState

# A service's own start-up: gets the common state, starts what the service adds (its cleanups
# pushed on the exit stack) and answers the service's state, a `ServiceState` subclass.
StateBuilder = Callable[[ServiceState, AsyncExitStack], Awaitable[ServiceState]]


def create_service_app(
    service: str,
    settings: JiluSettings,
    *,
    routers: Sequence[APIRouter] = (),
    depends_on: tuple[str, ...] = (),
    build_state: StateBuilder | None = None,
    description: str = "",
) -> FastAPI:
    """Build `service`'s app. Connections are made in the lifespan, never at import time;
    the lifespan stores one typed state (`common.state`), read only by the `deps.py` modules."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            engine = create_engine(settings.resolved_database_url)
            stack.push_async_callback(engine.dispose)
            write_engine = create_write_engine(engine)  # SQLite: one writer, the others queue
            if write_engine is not engine:
                stack.push_async_callback(write_engine.dispose)
            redis = create_redis(settings.redis_url)
            stack.push_async_callback(redis.aclose)
            http = create_http_client(settings.http_timeout, traced=True)
            stack.push_async_callback(http.aclose)
            # Runs after the service's own clean-ups (pushed later), off the event loop.
            stack.push_async_callback(asyncio.to_thread, tracing.flush)
            state = ServiceState(
                service=service,
                settings=settings,
                engine=engine,
                sessionmaker=create_sessionmaker(engine),
                write_sessionmaker=create_sessionmaker(write_engine, write=True),
                redis=redis,
                http=http,
                services=ServiceDirectory(settings, http),
                tokens=TokenCodec(settings.secret, settings.access_token_minutes, settings.refresh_token_days),
                rate_limiter=RateLimiter(redis),
            )
            if build_state is not None:
                state = await build_state(state, stack)
            app.state.service_state = state  # read by `common.deps.service_state` only
            yield

    production = settings.is_production
    openapi = settings.serves_openapi
    tracing.setup_tracing(service, settings)
    app = FastAPI(
        title=f"Jilu {service}",
        version=common.__version__,
        description=description,
        lifespan=lifespan,
        docs_url=None if production or not openapi else "/docs",
        redoc_url=None,
        openapi_url="/openapi.json" if openapi else None,
        debug=False,
        generate_unique_id_function=generate_operation_id,
        # FastAPI's own OpenTelemetry: server spans once `common.tracing` set a provider.
        # Metrics are Prometheus's (`common.metrics`), logs Jilu's own.
        telemetry={"metrics": False, "logs": False, "exclude": tracing.excluded},
    )
    install_error_handlers(app)
    # Innermost: they answer requests themselves (413/415, OPTIONS) after CORS has had its
    # say (a preflight is CORS's) and inside the layers that add the request id and headers.
    app.add_middleware(AllowedMethodsMiddleware)
    app.add_middleware(BodyGuardMiddleware, max_json_bytes=settings.max_json_kb * 1024)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After", "RateLimit", "RateLimit-Policy"],
        )
    # The last added is the outermost: every response, the JSON 500 included, gets the
    # request id and the security headers.
    app.add_middleware(RequestIdMiddleware, request_metrics=metrics.RequestMetrics(service))
    app.add_middleware(SecurityHeadersMiddleware)
    app.include_router(health_router(service, depends_on))
    app.include_router(_metrics_router(service))
    for router in routers:
        app.include_router(router)
    install_openapi(app)
    return app


def _metrics_router(service: str) -> APIRouter:
    """`GET /metrics`, Prometheus's text format, not in the OpenAPI: to a client outside
    `JILU_METRICS_ALLOW` it is a 404 like any unknown path (`common.metrics.metrics_allowed`)."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def scrape(request: Request, settings: SettingsDep) -> Response:
        if not metrics.metrics_allowed(request, settings):
            raise NotFound("Not Found")
        state = service_state(request.app)
        metrics.record_pool(service, "read", state.engine)
        write_bind = state.write_sessionmaker.kw.get("bind")
        if write_bind is not None and write_bind.pool is not state.engine.pool:
            metrics.record_pool(service, "write", write_bind)
        for queue in state.metric_queues():
            await metrics.record_queue(queue)
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    return router
