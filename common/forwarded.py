"""Which public paths the client-facing services (web, mobile) relay to their owners."""

from collections.abc import Iterable

from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from common.api_clients import FORWARD_METHODS, forward
from common.deps import ServicesDep, SettingsDep

USER_SERVICE_PREFIXES = ("/api/v1/auth", "/api/v1/users", "/api/v1/admin")
LLM_SERVICE_PREFIXES = ("/api/v1/chat", "/api/v1/memories", "/api/v1/digests", "/api/v1/llm")
# Single routes of llm_service inside a prefix the web and mobile services own themselves.
LLM_SERVICE_ROUTES = (("POST", "/api/v1/records/{record_id}/analyze"),)


def forwarding_router(prefixes: Iterable[str], service: str, *, tag: str) -> APIRouter:
    """A router that relays everything under each prefix to `service` (its client taken from
    the app's `ServiceDirectory` at request time). The owner's OpenAPI documents these paths."""
    router = APIRouter(tags=[tag])

    async def relay(request: Request, services: ServicesDep, settings: SettingsDep) -> StreamingResponse:
        return await forward(request, services[service], settings)

    relay.relays_to = service  # type: ignore[attr-defined]  # read by common.middleware.path_methods

    for prefix in prefixes:
        prefix = prefix.rstrip("/")
        for route in (prefix, prefix + "/{rest:path}"):
            router.add_api_route(route, relay, methods=FORWARD_METHODS, include_in_schema=False)
    return router


def _llm_routes() -> APIRouter:
    router = APIRouter(tags=["AI (llm_service)"])

    async def relay(request: Request, services: ServicesDep, settings: SettingsDep) -> StreamingResponse:
        return await forward(request, services["llm"], settings)

    for method, path in LLM_SERVICE_ROUTES:
        router.add_api_route(path, relay, methods=[method], include_in_schema=False)
    return router


def forwarded_routers() -> list[APIRouter]:
    return [
        forwarding_router(USER_SERVICE_PREFIXES, "user", tag="accounts (user_service)"),
        forwarding_router(LLM_SERVICE_PREFIXES, "llm", tag="AI (llm_service)"),
        _llm_routes(),
    ]
