"""The FastAPI app every service is built from: lifespan resources, middleware, errors, health."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

import common
from common.api_clients import ServiceDirectory, create_http_client
from common.bodies import BodyGuardMiddleware
from common.cache import create_redis
from common.config import JiluSettings
from common.database import create_engine, create_sessionmaker, create_write_engine
from common.errors import install_error_handlers
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
            http = create_http_client(settings.http_timeout)
            stack.push_async_callback(http.aclose)
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
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    app.include_router(health_router(service, depends_on))
    for router in routers:
        app.include_router(router)
    install_openapi(app)
    return app
