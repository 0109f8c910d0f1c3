"""Which public paths the client-facing services (web, mobile) relay to their owners."""

from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from common.api_clients import forward, forwarding_router

USER_SERVICE_PREFIXES = ("/api/v1/auth", "/api/v1/users", "/api/v1/admin")
LLM_SERVICE_PREFIXES = ("/api/v1/chat", "/api/v1/memories", "/api/v1/digests", "/api/v1/llm")
# Single routes of llm_service inside a prefix the web and mobile services own themselves.
LLM_SERVICE_ROUTES = (("POST", "/api/v1/records/{record_id}/analyze"),)


def _llm_routes() -> APIRouter:
    router = APIRouter(tags=["AI (llm_service)"])

    async def relay(request: Request) -> StreamingResponse:
        return await forward(request, request.app.state.services["llm"])

    for method, path in LLM_SERVICE_ROUTES:
        router.add_api_route(path, relay, methods=[method], include_in_schema=False)
    return router


def forwarded_routers() -> list[APIRouter]:
    return [
        forwarding_router(USER_SERVICE_PREFIXES, "user", tag="accounts (user_service)"),
        forwarding_router(LLM_SERVICE_PREFIXES, "llm", tag="AI (llm_service)"),
        _llm_routes(),
    ]
