"""No schema of any service exposes a hash or a secret; every answer carries the security
headers; CORS answers only the configured origins."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from common.config import JiluSettings
from llm_service.app.config import LlmSettings
from mobile_service.app.config import MobileSettings
from mobile_service.app.main import create_app as create_mobile_app
from tests.support import SECURITY_HEADERS, app_client, assert_error, free_port
from user_service.app.config import UserSettings
from user_service.tests.helpers import Api, MakeApi, sqlite_only
from web_service.app.config import WebSettings

SETTINGS: dict[str, type[JiluSettings]] = {
    "user": UserSettings,
    "mobile": MobileSettings,
    "web": WebSettings,
    "llm": LlmSettings,
}
SERVICES = list(SETTINGS)
# Property names that would mean a stored secret leaves the server.
FORBIDDEN_PROPERTIES = {"password_hash", "token_hash", "hash", "hashed_password", "secret"}

Schema = dict[str, Any]


def service_openapi(name: str, make_settings: Callable[..., Any]) -> Schema:
    main = importlib.import_module(f"{name}_service.app.main")
    return main.create_app(make_settings(SETTINGS[name])).openapi()


def resolve(schema: Schema, document: Schema) -> Schema:
    ref = schema.get("$ref")
    if not ref:
        return schema
    name = ref.removeprefix("#/components/schemas/")
    return document["components"]["schemas"][name]


def property_names(schema: Schema, document: Schema, seen: set[str] | None = None) -> Iterator[str]:
    """Every property name reachable from `schema`, through references, arrays and unions."""
    seen = set() if seen is None else seen
    ref = schema.get("$ref")
    if ref:
        if ref in seen:
            return
        seen.add(ref)
    schema = resolve(schema, document)
    for name, sub in schema.get("properties", {}).items():
        yield name
        yield from property_names(sub, document, seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from property_names(schema[key], document, seen)
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, []):
            yield from property_names(sub, document, seen)


def response_schemas(document: Schema) -> Iterator[tuple[str, Schema]]:
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                for content in response.get("content", {}).values():
                    if "schema" in content:
                        yield f"{method.upper()} {path} {status}", content["schema"]


def request_schemas(document: Schema) -> Iterator[tuple[str, Schema]]:
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                yield f"{method.upper()} {path}", content["schema"]


@pytest.fixture
def openapi(make_settings: Callable[..., Any]) -> Callable[[str], Schema]:
    """`openapi("web")`: that service's OpenAPI document, from its real app."""
    return lambda name: service_openapi(name, make_settings)


@pytest.mark.parametrize("service", SERVICES)
def test_no_component_schema_has_a_hash_or_secret_property(service: str, openapi: Callable[[str], Schema]) -> None:
    document = openapi(service)

    offending = {
        f"{name}.{prop}"
        for name, schema in document.get("components", {}).get("schemas", {}).items()
        for prop in property_names(schema, document)
        if prop in FORBIDDEN_PROPERTIES
    }

    assert offending == set()


@pytest.mark.parametrize("service", SERVICES)
def test_no_response_carries_a_password_or_hash(service: str, openapi: Callable[[str], Schema]) -> None:
    document = openapi(service)

    offending = {
        f"{where}: {prop}"
        for where, schema in response_schemas(document)
        for prop in property_names(schema, document)
        if "password" in prop or prop in FORBIDDEN_PROPERTIES
    }

    assert offending == set()


def test_the_schema_walk_sees_what_it_must(openapi: Callable[[str], Schema]) -> None:
    # The positive control of the two tests above: the walk reaches nested, referenced and
    # listed models, and finds passwords where they belong (requests).
    document = openapi("user")
    requests = dict(request_schemas(document))
    responses = dict(response_schemas(document))

    assert "password" in set(property_names(requests["POST /api/v1/auth/register"], document))
    assert {"current_password", "new_password"} <= set(
        property_names(requests["POST /api/v1/users/me/password"], document)
    )
    assert "token_prefix" in set(property_names(responses["GET /api/v1/users/me/api-tokens 200"], document))
    assert "username" in set(property_names(responses["GET /api/v1/admin/users 200"], document))  # Page[...]
    assert "access_token" in set(property_names(responses["POST /api/v1/auth/token 200"], document))


def test_the_user_service_documents_every_account_route(openapi: Callable[[str], Schema]) -> None:
    paths = openapi("user")["paths"]

    expected = {
        "/api/v1/auth/register": {"post"},
        "/api/v1/auth/token": {"post"},
        "/api/v1/auth/refresh": {"post"},
        "/api/v1/auth/logout": {"post"},
        "/api/v1/users/me": {"get", "patch"},
        "/api/v1/users/me/password": {"post"},
        "/api/v1/users/me/api-tokens": {"get", "post"},
        "/api/v1/users/me/api-tokens/{token_id}": {"delete"},
        "/api/v1/admin/users": {"get"},
        "/api/v1/admin/users/{user_id}": {"patch"},
    }
    assert {path: set(paths.get(path, {})) for path in expected} == expected
    # The routes that need a token say so.
    assert paths["/api/v1/users/me"]["get"].get("security")
    assert "401" in paths["/api/v1/users/me"]["get"]["responses"]


# -- headers -------------------------------------------------------------------------


@sqlite_only
async def test_every_kind_of_answer_carries_the_security_headers(api: Api) -> None:
    answers = [
        await api.client.get("/health"),
        await api.client.get("/api/v1/users/me"),  # 401
        await api.client.get("/api/v1/no-such-route"),  # 404
        await api.client.post("/api/v1/auth/register", json={}),  # 422
        await api.client.put("/api/v1/users/me"),  # 405
    ]

    assert [a.status_code for a in answers] == [200, 401, 404, 422, 405]
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get(name) == value, (answer.request.url, name)


async def test_a_forwarding_service_answers_with_the_security_headers_too(make_settings: Callable[..., Any]) -> None:
    settings = make_settings(MobileSettings, user_url=f"http://127.0.0.1:{free_port()}")
    async with app_client(create_mobile_app(settings)) as client:
        response = await client.get("/api/v1/users/me")

    assert_error(response, 503, "service_unavailable")


@pytest.fixture
async def cors_api(make_api: MakeApi) -> AsyncIterator[Api]:
    async with make_api(cors_origins=["https://app.example"]) as api:
        yield api


def preflight(origin: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}


@sqlite_only
async def test_cors_allows_the_configured_origin(cors_api: Api) -> None:
    response = await cors_api.client.options("/api/v1/auth/token", headers=preflight("https://app.example"))

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in response.headers["access-control-allow-methods"]
    simple = await cors_api.client.get("/health", headers={"Origin": "https://app.example"})
    assert simple.headers["access-control-allow-origin"] == "https://app.example"
    exposed = {h.strip().lower() for h in simple.headers["access-control-expose-headers"].split(",")}
    assert {"retry-after", "ratelimit", "ratelimit-policy", "x-request-id"} <= exposed


@sqlite_only
async def test_cors_refuses_any_other_origin(cors_api: Api) -> None:
    response = await cors_api.client.options("/api/v1/auth/token", headers=preflight("https://evil.example"))

    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    simple = await cors_api.client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


@sqlite_only
async def test_without_configured_origins_there_is_no_cors(api: Api) -> None:
    response = await api.client.options("/api/v1/auth/token", headers=preflight("https://app.example"))

    assert "access-control-allow-origin" not in response.headers
    simple = await api.client.get("/health", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in simple.headers
