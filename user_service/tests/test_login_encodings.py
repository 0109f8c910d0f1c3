"""`POST /api/v1/auth/token` takes the OAuth2 password form (urlencoded or multipart) and the
same fields as JSON; anything else is refused with a message naming what is accepted."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi.openapi.utils import get_openapi

from tests.support import assert_error, assert_problems
from user_service.tests.helpers import PASSWORD, Api, MakeApi, sqlite_only

pytestmark = sqlite_only

TOKEN = "/api/v1/auth/token"
ENCODINGS = ("application/x-www-form-urlencoded", "multipart/form-data", "application/json")


def names_the_encodings(message: object) -> None:
    for encoding in ENCODINGS:
        assert encoding in str(message), message


async def assert_logged_in(api: Api, response: Any) -> None:
    assert response.status_code == 200, response.text
    assert (await api.me(response.json()["access_token"])).status_code == 200


async def test_json_login(api: Api) -> None:
    await api.register("alice")

    response = await api.client.post(TOKEN, json={"username": "alice", "password": PASSWORD})

    await assert_logged_in(api, response)


async def test_json_login_with_a_charset(api: Api) -> None:
    await api.register("alice")
    body = json.dumps({"username": "alice", "password": PASSWORD}).encode()

    response = await api.client.post(TOKEN, content=body, headers={"Content-Type": "application/json; charset=utf-8"})

    await assert_logged_in(api, response)


async def test_the_oauth2_form_urlencoded_and_multipart(api: Api) -> None:
    await api.register("alice")

    await assert_logged_in(api, await api.client.post(TOKEN, data={"username": "alice", "password": PASSWORD}))
    full_form = {"grant_type": "password", "username": "alice", "password": PASSWORD, "scope": "", "client_id": "app"}
    await assert_logged_in(api, await api.client.post(TOKEN, data=full_form))
    multipart = {"username": (None, "alice"), "password": (None, PASSWORD)}
    await assert_logged_in(api, await api.client.post(TOKEN, files=multipart))


async def test_a_wrong_password_as_json_is_invalid_credentials(api: Api) -> None:
    await api.register("alice")

    response = await api.client.post(TOKEN, json={"username": "alice", "password": "not-it-at-all-9"})

    assert_error(response, 401, "invalid_credentials")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
async def test_another_encoding_is_415_naming_the_accepted_ones(api: Api, content_type: str | None) -> None:
    await api.register("alice")
    headers = {"Content-Type": content_type} if content_type else {}

    response = await api.client.post(TOKEN, content=b"username=alice&password=x", headers=headers)

    names_the_encodings(assert_error(response, 415, "unsupported_media_type"))


async def test_json_labelled_as_a_form_is_422_naming_the_encodings(api: Api) -> None:
    await api.register("alice")
    body = json.dumps({"username": "alice", "password": PASSWORD}).encode()

    response = await api.client.post(TOKEN, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})

    detail = assert_problems(response)
    assert [(problem["field"], problem["type"]) for problem in detail] == [("body", "content_type_mismatch")]
    assert "looks like JSON" in str(detail)
    assert PASSWORD not in response.text  # the body is not echoed back
    names_the_encodings(detail)


async def test_a_form_without_its_fields_is_422_naming_the_encodings(api: Api) -> None:
    response = await api.client.post(TOKEN, data={"user": "alice", "pass": PASSWORD})

    detail = assert_problems(response)
    assert {problem["field"] for problem in detail} == {"body.username", "body.password"}
    names_the_encodings(detail)


async def test_a_form_labelled_as_json_is_422_saying_where(api: Api) -> None:
    response = await api.client.post(
        TOKEN, content=b"username=alice&password=x", headers={"Content-Type": "application/json"}
    )

    detail = assert_problems(response)
    assert detail[0]["type"] == "json_invalid"
    assert "line 1, column 1" in detail[0]["message"]
    names_the_encodings(detail)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"username": "alice"}, {"body.password"}),
        ({"username": "alice", "password": PASSWORD, "remember": True}, {"body.remember"}),
        ({"username": "", "password": PASSWORD}, {"body.username"}),
        (["alice", PASSWORD], {"body"}),
    ],
    ids=["missing-password", "extra-field", "empty-username", "not-an-object"],
)
async def test_a_bad_json_login_is_422_naming_the_field(api: Api, body: object, fields: set[str]) -> None:
    response = await api.client.post(TOKEN, json=body)

    detail = assert_problems(response)
    assert {problem["field"] for problem in detail} == fields


async def test_a_grant_type_other_than_password_is_422(api: Api) -> None:
    await api.register("alice")

    response = await api.client.post(
        TOKEN, data={"grant_type": "client_credentials", "username": "alice", "password": PASSWORD}
    )

    detail = assert_problems(response)
    assert detail[0]["field"] == "body.grant_type"


async def test_the_route_declares_both_encodings_in_its_schema(api: Api) -> None:
    # The route's own schema, before the public document's post-processing.
    document = get_openapi(title="user_service", version="1", routes=api.app.routes)
    body = document["paths"][TOKEN]["post"]["requestBody"]

    assert body["required"] is True
    assert set(body["content"]) == set(ENCODINGS)
    json_schema = body["content"]["application/json"]["schema"]
    assert json_schema["required"] == ["username", "password"]
    assert json_schema["additionalProperties"] is False
    form_schema = body["content"]["application/x-www-form-urlencoded"]["schema"]
    assert {"username", "password", "grant_type"} <= set(form_schema["properties"])


# -- the size cap: a login form is capped like JSON (JILU_MAX_JSON_KB), before it is read ----

MB = 1024 * 1024
CHUNK = 64 * 1024


def padded_form(size: int) -> bytes:
    """A well-formed urlencoded login of `size` bytes: only its size makes it wrong."""
    head = f"username=alice&password={PASSWORD}&pad=".encode()
    return head + b"x" * (size - len(head))


def padded_multipart(size: int) -> tuple[bytes, str]:
    boundary = "login-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="username"\r\n\r\nalice\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="password"\r\n\r\n{PASSWORD}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="pad"\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + b"x" * (size - len(head) - len(tail)) + tail, f"multipart/form-data; boundary={boundary}"


async def test_a_3mb_urlencoded_login_is_413_without_being_read(api: Api) -> None:
    await api.register("alice")
    body = padded_form(3 * MB)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    tracemalloc.start()
    try:
        response = await api.client.post(TOKEN, content=body, headers=headers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert assert_error(response, 413, "payload_too_large") == "a form body may be at most 1024 KB"
    # Parsing it would have made a 3 MB field at least; refused on Content-Length, nothing is read.
    assert peak < MB // 4, f"peak {peak} bytes"


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
async def test_a_streamed_login_form_is_413_once_past_the_cap(api: Api, encoding: str) -> None:
    await api.register("alice")
    if encoding == "urlencoded":
        body, content_type = padded_form(3 * MB), "application/x-www-form-urlencoded"
    else:
        body, content_type = padded_multipart(3 * MB)
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        nonlocal pulled
        for start in range(0, len(body), CHUNK):
            pulled += 1
            yield body[start : start + CHUNK]

    response = await api.client.post(TOKEN, content=chunks(), headers={"Content-Type": content_type})

    assert_error(response, 413, "payload_too_large")
    assert pulled <= MB // CHUNK + 1 < len(body) // CHUNK


async def test_a_multipart_login_over_the_cap_is_413_and_under_it_works(make_api: MakeApi) -> None:
    async with make_api(max_json_kb=8) as api:
        await api.register("alice")
        too_large, content_type = padded_multipart(8 * 1024 + 1)
        fits, _ = padded_multipart(8 * 1024)

        refused = await api.client.post(TOKEN, content=too_large, headers={"Content-Type": content_type})
        accepted = await api.client.post(TOKEN, content=fits, headers={"Content-Type": content_type})

    assert assert_error(refused, 413, "payload_too_large") == "a form body may be at most 8 KB"
    assert accepted.status_code == 200, accepted.text
