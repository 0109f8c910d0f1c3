"""The public ports' OpenAPI: every path they serve (the relayed ones merged from the owners'
committed snapshot, which must be current), nothing internal, the real error shapes,
statuses, headers, security, stable operationIds and examples; `/openapi.json` by setting."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, routing
from pydantic import BaseModel

from common.config import Environment, JiluSettings
from common.openapi.merge import FORWARDED, _first_match, is_forwarded, load_snapshot
from common.openapi.operation_ids import SNAKE_CASE
from common.openapi.snapshot import OWNER_APPS, build_snapshot, owner_document
from common.openapi.truthful import SSE_EVENT
from common.records.attachments.routes import THUMBNAIL_TYPE
from common.records.attachments.sniff import ALLOWED_TYPES
from mobile_service.app.config import MobileSettings
from mobile_service.app.main import create_app as create_mobile_app
from web_service.app.config import WebSettings
from web_service.app.main import create_app as create_web_app

Schema = dict[str, Any]
PORTS: dict[str, tuple[Callable[[Any], FastAPI], type[JiluSettings]]] = {
    "mobile": (create_mobile_app, MobileSettings),
    "web": (create_web_app, WebSettings),
}
REF = "#/components/schemas/"


def build(port: str, data_dir: Path, **settings: Any) -> FastAPI:
    create, settings_cls = PORTS[port]
    values: dict[str, Any] = {"env": "test", "data_dir": data_dir, **settings}
    return create(settings_cls(_env_file=None, **values))  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def owners() -> dict[str, Schema]:
    return {owner: owner_document(owner) for owner in FORWARDED}


@pytest.fixture(scope="module", params=list(PORTS))
def port(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[FastAPI, Schema]:
    app = build(str(request.param), tmp_path_factory.mktemp("data"))
    return app, app.openapi()


def operations(document: Schema) -> list[tuple[str, str, Schema]]:
    return [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_the_committed_owner_snapshot_is_current() -> None:
    assert build_snapshot() == load_snapshot(), (
        "common/openapi/owners.json is stale: run `make openapi` (python -m common.openapi.snapshot)"
    )


def test_every_path_the_port_serves_is_described_and_nothing_internal(
    port: tuple[FastAPI, Schema], owners: dict[str, Schema]
) -> None:
    app, document = port
    described = {(path, method) for path, method, _ in operations(document)}
    relays: list[str] = []  # their path formats
    for route in routing.iter_route_contexts(app.routes):
        if not isinstance(route.original_route, routing.APIRoute):
            continue
        # An APIRoute's context has both.
        assert route.methods is not None and route.path_format is not None
        if route.include_in_schema:
            for method in route.methods:
                assert (route.path_format, method.lower()) in described, (method, route.path_format)
        elif route.path_format != "/metrics":  # Prometheus's, undocumented on purpose (common/metrics.py)
            relays.append(route.path_format)
    assert relays, "the port relays nothing?"
    # per relayed prefix (`/api/v1/auth` and `/api/v1/auth/{rest}`) or single route
    relayed_by: dict[str, int] = {path.removesuffix("/{rest}"): 0 for path in relays}
    for owner, owner_doc in owners.items():
        for path, method, operation in operations(owner_doc):
            target = _first_match(app.routes, method, path)
            mine = document["paths"].get(path, {}).get(method)
            if is_forwarded(owner, method, path):
                assert target is not None and mine is not None, (owner, method, path)
                if not target.include_in_schema:  # reaches the relay: the owner's operation
                    relayed_by[target.path_format.removesuffix("/{rest}")] += 1
                    assert mine["operationId"].endswith(operation["operationId"]), (method, path)
            else:  # internal to the owner: never the owner's operation on a public port
                assert (
                    mine is None
                    or mine["operationId"] != operation["operationId"]
                    or (target is not None and target.include_in_schema)
                )
    assert all(relayed_by.values()), f"relays that no owner operation documents: {relayed_by}"
    for path, method, _ in operations(document):  # and nothing the port does not serve
        assert _first_match(app.routes, method, path) is not None, (method, path)


def _component(document: Schema, schema: Schema) -> Schema:
    return document["components"]["schemas"][schema["$ref"].removeprefix(REF)]


def test_errors_have_the_real_shape(port: tuple[FastAPI, Schema]) -> None:
    _, document = port
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert "HTTPValidationError" not in str(document)
    assert set(schemas["FieldProblem"]["required"]) == {"field", "message", "type"}
    for path, method, operation in operations(document):
        responses = operation["responses"]
        if operation.get("parameters") or operation.get("requestBody"):
            assert responses["422"]["content"]["application/json"]["schema"] == {"$ref": REF + "ValidationErrorBody"}
        for status, response in responses.items():
            if int(status) < 400:
                continue
            schema = response["content"]["application/json"]["schema"]
            assert {"error", "detail"} <= set(_component(document, schema)["required"]), (method, path, status)


def test_statuses_headers_and_security_are_declared(port: tuple[FastAPI, Schema]) -> None:
    _, document = port
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["bearerFormat"] == "JWT"
    assert schemes["apiToken"]["bearerFormat"].startswith("jilu_pat_")
    by_id = {op["operationId"]: (path, method, op) for path, method, op in operations(document)}
    public = {"auth_register", "auth_token", "auth_refresh", "health", "health_ready", "sharing_read_shared_record"}
    for name in public:
        assert "security" not in by_id[name][2], name
    for path, method, operation in operations(document):
        responses = operation["responses"]
        if operation.get("security"):
            assert {"bearerAuth": []} in operation["security"] and {"apiToken": []} in operation["security"]
        if operation.get("security") and {} not in operation["security"]:
            assert {"401", "403", "429", "503"} <= set(responses), (method, path)
            assert "WWW-Authenticate" in responses["401"]["headers"]
        if "{" in path:
            assert "404" in responses, (method, path)
        if "requestBody" in operation:
            assert {"413", "415", "422"} <= set(responses), (method, path)
        if "429" in responses:
            assert responses["429"]["headers"]["Retry-After"]["required"] is True
        if "503" in responses:
            assert "Retry-After" in responses["503"]["headers"]
    for name in ("records_create", "records_read", "records_update", "records_restore"):
        path, method, operation = by_id[name]
        success = next(r for s, r in operation["responses"].items() if s.startswith("2"))
        assert "ETag" in success["headers"], name
    conflict = by_id["records_update"][2]["responses"]["409"]["content"]["application/json"]["schema"]
    assert _component(document, conflict)["properties"]["current"] == {"$ref": REF + "RecordPublic"}
    for name in ("auth_register", "auth_token", "chat_ask", "users_read_me"):  # relayed: the relay's errors too
        assert {"502", "504"} <= set(by_id[name][2]["responses"]), name
    for name in ("auth_register", "auth_token", "chat_ask"):
        assert "429" in by_id[name][2]["responses"], name


def test_streams_and_files_are_described_as_sent(port: tuple[FastAPI, Schema]) -> None:
    # Found by tests/fuzz: an event stream's schema describes each event as a client's SSE
    # parser hands it over (it said `string`), and a file is sent as its own type (the
    # document said `application/octet-stream`, the answer was `image/png`).
    _, document = port
    streams = [
        (path, content["text/event-stream"]["schema"])
        for path, method, operation in operations(document)
        for response in operation["responses"].values()
        if "text/event-stream" in (content := response.get("content", {}))
    ]
    assert any(path.endswith("/messages") for path, _ in streams), streams
    for path, schema in streams:
        assert schema == SSE_EVENT, path
    sent = set(document["paths"]["/api/v1/attachments/{attachment_id}"]["get"]["responses"]["200"]["content"])
    assert sent == ALLOWED_TYPES | {THUMBNAIL_TYPE}
    assert sent == set(
        document["paths"]["/api/v1/files/{attachment_id}/{variant}"]["get"]["responses"]["200"]["content"]
    )


def test_no_parameter_is_documented_as_null(port: tuple[FastAPI, Schema]) -> None:
    # Found by tests/fuzz: `anyOf: [array, null]` for `?tag=` made `tag=1.5` (a fine tag, as
    # text) look like a wrong type; no request can send a parameter as null.
    _, document = port
    for path, method, operation in operations(document):
        for parameter in operation.get("parameters", []):
            assert '"null"' not in str(parameter["schema"]).replace("'", '"'), (method, path, parameter["name"])
    tag = next(p for p in document["paths"]["/api/v1/search"]["get"]["parameters"] if p["name"] == "tag")
    assert tag["schema"]["type"] == "array" and tag["schema"]["items"]["type"] == "string"


def test_operation_ids_are_unique_snake_case_and_stable(port: tuple[FastAPI, Schema]) -> None:
    _, document = port
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for operation_id in ids:
        assert SNAKE_CASE.match(operation_id), operation_id
        assert not re.search(r"api_v1|__|_id_", operation_id), operation_id
    for known in (
        "records_list",
        "records_create",
        "records_update",
        "auth_token",
        "auth_register",
        "auth_logout",
        "sync_push_changes",
        "sync_read_changes",
        "attachments_upload",
        "chat_ask",
        "records_search",
    ):
        assert known in ids, known


def test_every_request_body_has_an_example(port: tuple[FastAPI, Schema]) -> None:
    _, document = port
    for path, method, operation in operations(document):
        for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
            if media_type != "multipart/form-data":
                assert "example" in content or "examples" in content, (method, path, media_type)


async def _status(app: FastAPI, path: str) -> int:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return (await client.get(path)).status_code


@pytest.mark.parametrize(
    ("env", "openapi_public", "openapi_status", "docs_status"),
    [
        ("production", None, 404, 404),
        ("production", True, 200, 404),
        ("development", None, 200, 200),
        ("development", False, 404, 404),
    ],
)
async def test_openapi_json_by_setting(
    env: Environment, openapi_public: bool | None, openapi_status: int, docs_status: int, tmp_path: Path
) -> None:
    app = build("mobile", tmp_path, env=env, openapi_public=openapi_public)
    assert await _status(app, "/openapi.json") == openapi_status
    assert await _status(app, "/docs") == docs_status
    settings = JiluSettings(_env_file=None, env=env, openapi_public=openapi_public)  # type: ignore[call-arg]
    assert settings.serves_openapi is (openapi_status == 200)


def service_app(service: str, data_dir: Path) -> FastAPI:
    if service in PORTS:
        return build(service, data_dir)
    main, config, settings_name = OWNER_APPS[service]
    settings_cls = getattr(importlib.import_module(config), settings_name)
    settings = settings_cls(_env_file=None, env="test", data_dir=data_dir, openapi_public=True)
    app: FastAPI = importlib.import_module(main).create_app(settings)
    return app


@pytest.mark.parametrize("service", [*PORTS, *OWNER_APPS])
def test_request_examples_are_the_models_own_and_valid(service: str, tmp_path: Path) -> None:
    # One source: an example is written on its model (json_schema_extra), and the document
    # shows that one; a table elsewhere could drift from it, or from the model itself.
    app = service_app(service, tmp_path)
    document = app.openapi()
    checked = 0
    for context in routing.iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, routing.APIRoute) or not route.include_in_schema or route.body_field is None:
            continue
        model = route.body_field.field_info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue  # no model, no examples of its own
        examples = (getattr(model, "model_config", {}).get("json_schema_extra") or {}).get("examples", [])
        for example in examples:
            model.model_validate(example)  # raises when an example no longer fits its model
        if examples:
            assert route.methods is not None  # an APIRoute's
            for method in route.methods:
                content = document["paths"][route.path_format][method.lower()]["requestBody"]["content"]
                assert content["application/json"]["example"] == examples[0], (method, route.path_format)
                checked += 1
    assert checked, "no body with an example of its own?"


def test_the_login_forms_example_is_login_requests(tmp_path: Path) -> None:
    from user_service.app.auth.schemas import LoginRequest

    document = service_app("mobile", tmp_path).openapi()
    content = document["paths"]["/api/v1/auth/token"]["post"]["requestBody"]["content"]
    (entry,) = content.values()  # the form only (see truthful.py), JSON named in its description
    assert entry["example"] == LoginRequest.model_json_schema()["examples"][0]
    LoginRequest.model_validate(entry["example"])
