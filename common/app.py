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
from common.database import create_engine, create_sessionmaker
from common.errors import install_error_handlers
from common.health import health_router
from common.middleware import AllowedMethodsMiddleware, RequestIdMiddleware, SecurityHeadersMiddleware
from common.openapi import generate_operation_id, install_openapi
from common.security.rate_limit import RateLimiter
from common.security.tokens import TokenCodec

# Extra start-up work of a service: gets the app, may push cleanups on the exit stack.
StartupHook = Callable[[FastAPI, AsyncExitStack], Awaitable[None]]


def create_service_app(
    service: str,
    settings: JiluSettings,
    *,
    routers: Sequence[APIRouter] = (),
    depends_on: tuple[str, ...] = (),
    on_startup: Sequence[StartupHook] = (),
    description: str = "",
) -> FastAPI:
    """Build `service`'s app. Connections are made in the lifespan, never at import time."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            engine = create_engine(settings.resolved_database_url)
            stack.push_async_callback(engine.dispose)
            redis = create_redis(settings.redis_url)
            stack.push_async_callback(redis.aclose)
            http = create_http_client(settings.http_timeout)
            stack.push_async_callback(http.aclose)
            app.state.settings = settings
            app.state.engine = engine
            app.state.sessionmaker = create_sessionmaker(engine)
            app.state.write_sessionmaker = create_sessionmaker(engine, write=True)
            app.state.redis = redis
            app.state.http = http
            app.state.services = ServiceDirectory(settings, http)
            app.state.tokens = TokenCodec(settings.secret, settings.access_token_minutes, settings.refresh_token_days)
            app.state.rate_limiter = RateLimiter(redis)
            for hook in on_startup:
                await hook(app, stack)
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
    app.state.settings = settings
    app.state.service = service  # which port answered (`common.public_urls`)
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
