"""`POST /api/v1/auth/register`: who may register, with what, and what is stored."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from tests.support import assert_error
from user_service.tests.helpers import PASSWORD, Api, sqlite_only

PUBLIC_USER_FIELDS = {
    "id",
    "username",
    "email",
    "display_name",
    "role",
    "is_active",
    "language",
    "time_zone",
    "created_at",
    "updated_at",
}


def problem_fields(detail: object) -> set[str]:
    """The fields a validation error names (`body.password` -> `password`)."""
    assert isinstance(detail, list), detail
    return {item["field"].removeprefix("body.") for item in detail}


async def test_registration_answers_201_with_the_public_user(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/auth/register",
        json={"username": "Mei", "password": PASSWORD, "email": "Mei@Example.COM", "display_name": "梅"},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == PUBLIC_USER_FIELDS
    assert isinstance(body["id"], str) and body["id"]
    assert body["username"] == "Mei"
    assert body["email"] == "mei@example.com"  # emails are stored lower-cased
    assert body["display_name"] == "梅"
    assert body["is_active"] is True
    assert (body["language"], body["time_zone"]) == ("zh-CN", "Asia/Shanghai")
    for stamp in ("created_at", "updated_at"):
        assert datetime.fromisoformat(body[stamp]).tzinfo is not None


async def test_the_first_user_is_admin_and_the_next_is_not(api: Api) -> None:
    first = await api.register("founder")
    second = await api.register("newcomer")

    assert first["role"] == "admin"
    assert second["role"] == "user"


async def test_two_first_registrations_at_once_make_exactly_one_admin(api: Api) -> None:
    responses = await asyncio.gather(
        *(
            api.client.post("/api/v1/auth/register", json={"username": name, "password": PASSWORD})
            for name in ("racer1", "racer2")
        )
    )

    created = [r.json() for r in responses if r.status_code == 201]
    assert all(r.status_code in (201, 409) for r in responses), [r.text for r in responses]
    assert created
    assert [user["role"] for user in created].count("admin") == 1
    assert await api.user_count() == len(created)


@pytest.mark.parametrize("again", ["ALICE", "alice", "aLiCe"])
async def test_a_username_is_taken_whatever_its_case(api: Api, again: str) -> None:
    await api.register("Alice")

    response = await api.client.post("/api/v1/auth/register", json={"username": again, "password": PASSWORD})

    assert_error(response, 409, "conflict")
    assert await api.user_count() == 1


async def test_an_email_is_taken_whatever_its_case(api: Api) -> None:
    await api.register("first", email="same@example.com")

    response = await api.client.post(
        "/api/v1/auth/register", json={"username": "second", "password": PASSWORD, "email": "SAME@example.com"}
    )

    assert_error(response, 409, "conflict")
    assert await api.user_count() == 1


@sqlite_only
@pytest.mark.parametrize("extra", [{"role": "admin"}, {"is_active": False}, {"id": "chosen-id"}])
async def test_fields_the_server_decides_are_refused(api: Api, extra: dict[str, object]) -> None:
    await api.register("founder")  # so a new account would be a plain user

    response = await api.client.post(
        "/api/v1/auth/register", json={"username": "climber", "password": PASSWORD, **extra}
    )

    detail = assert_error(response, 422, "validation_error")
    assert problem_fields(detail) == set(extra)
    assert await api.user_count() == 1


@sqlite_only
@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("Ab3$xyz", "at least 8"),
        ("Ab3$" + "x" * 125, "128"),
        ("password123", "common"),
        ("aaaaaaaaa", "different characters"),
        ("my-dongdong-pass", "username"),
    ],
    ids=["7-chars", "129-chars", "common", "one-character", "contains-username"],
)
async def test_weak_passwords_are_422_naming_the_field(api: Api, password: str, why: str) -> None:
    response = await api.client.post("/api/v1/auth/register", json={"username": "DongDong", "password": password})

    detail = assert_error(response, 422, "validation_error")
    assert problem_fields(detail) == {"password"}
    assert why in str(detail)
    assert await api.user_count() == 0


async def test_passwords_are_kept_whole_at_both_length_limits(api: Api) -> None:
    longest = "Zq7-" * 32  # 128 characters
    await api.register("longpass", longest)
    await api.register("shortpass", "Zq7-wxyv")  # 8 characters

    assert (await api.token("longpass", longest)).status_code == 200
    assert (await api.token("shortpass", "Zq7-wxyv")).status_code == 200
    # Nothing was truncated: the same password less its last character is another password.
    assert_error(await api.token("longpass", longest[:-1]), 401, "invalid_credentials")


async def test_a_password_is_stored_exactly_as_typed(api: Api) -> None:
    spaced = "  two spaces each side  "
    await api.register("spacey", spaced)

    assert (await api.token("spacey", spaced)).status_code == 200
    assert_error(await api.token("spacey", spaced.strip()), 401, "invalid_credentials")


async def test_the_stored_hash_is_argon2id(api: Api) -> None:
    user = await api.register("hashed")

    row = await api.user_row(user["id"])

    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash


@sqlite_only
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"username": "ab"}, "username"),
        ({"username": "x" * 33}, "username"),
        ({"username": "has space"}, "username"),
        ({"username": "<script>"}, "username"),
        ({"email": "not-an-email"}, "email"),
        ({"display_name": "x" * 65}, "display_name"),
        ({"password": None}, "password"),
    ],
)
async def test_bad_input_is_422_naming_the_field(api: Api, fields: dict[str, object], field: str) -> None:
    body = {"username": "valid_name", "password": PASSWORD, **fields}

    response = await api.client.post("/api/v1/auth/register", json=body)

    detail = assert_error(response, 422, "validation_error")
    assert problem_fields(detail) == {field}
    assert await api.user_count() == 0


async def test_a_username_that_grows_when_case_folded_is_refused_not_a_500(api: Api) -> None:
    # "ß" case-folds to "ss": 32 of them fit the username but not its 32-character key.
    response = await api.client.post("/api/v1/auth/register", json={"username": "ß" * 32, "password": PASSWORD})

    detail = assert_error(response, 422, "validation_error")
    assert problem_fields(detail) == {"username"}
    assert await api.user_count() == 0


async def test_unicode_usernames_are_unique_by_case_folding(api: Api) -> None:
    await api.register("Straße")

    response = await api.client.post("/api/v1/auth/register", json={"username": "STRASSE", "password": PASSWORD})

    assert_error(response, 409, "conflict")
    assert (await api.token("strasse")).status_code == 200


@sqlite_only
async def test_a_body_that_is_not_json_is_422(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/auth/register", content=b"username=x", headers={"content-type": "application/json"}
    )

    assert_error(response, 422, "validation_error")
    assert await api.user_count() == 0


# -- the username rule, in words ---------------------------------------------------------

USERNAME_RULE_WORDS = "3 to 32 characters long and uses only letters"


@sqlite_only
@pytest.mark.parametrize(
    ("username", "why"),
    [
        ("ab", "too short"),
        ("x" * 33, "too long"),
        ("has space", "a character that is not allowed"),
        ("<script>", "a character that is not allowed"),
        ("ß" * 32, "too long once case-folded"),
    ],
)
async def test_a_bad_username_is_refused_in_words(api: Api, username: str, why: str) -> None:
    response = await api.client.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD})

    detail = assert_error(response, 422, "validation_error")
    assert problem_fields(detail) == {"username"}
    message = detail[0]["message"]  # type: ignore[index]
    assert USERNAME_RULE_WORDS in message and why in message
    assert "'.', '_' and '-'" in message
    assert "^[" not in message and "pattern" not in message  # no regex


@sqlite_only
@pytest.mark.parametrize("username", ["梅花树", "lin.mei", "a_b-c", "Zoë"])
async def test_letters_of_any_alphabet_digits_and_dot_dash_underscore_are_allowed(api: Api, username: str) -> None:
    assert (await api.register(username))["username"] == username


@sqlite_only
async def test_the_openapi_describes_the_username_rule_in_words(api: Api) -> None:
    schemas = (await api.client.get("/openapi.json")).json()["components"]["schemas"]

    description = schemas["UserCreate"]["properties"]["username"]["description"]

    assert USERNAME_RULE_WORDS in description and "'.', '_' and '-'" in description


# -- register?login=true -----------------------------------------------------------------


async def test_register_with_login_answers_the_user_and_a_working_pair(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/auth/register", params={"login": "true"}, json={"username": "mei", "password": PASSWORD}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"user", "tokens"}
    assert set(body["user"]) == PUBLIC_USER_FIELDS
    assert set(body["tokens"]) == {"access_token", "refresh_token", "token_type", "expires_in"}
    me = await api.me(body["tokens"]["access_token"])
    assert me.status_code == 200 and me.json()["id"] == body["user"]["id"]
    refreshed = await api.refresh(body["tokens"]["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert (await api.me(refreshed.json()["access_token"])).status_code == 200


@sqlite_only
@pytest.mark.parametrize("params", [{}, {"login": "false"}])
async def test_register_without_login_answers_the_user_alone(api: Api, params: dict[str, str]) -> None:
    response = await api.client.post(
        "/api/v1/auth/register", params=params, json={"username": "mei", "password": PASSWORD}
    )

    assert response.status_code == 201, response.text
    assert set(response.json()) == PUBLIC_USER_FIELDS
    assert await api.redis.keys("jilu:session:*") == []


@sqlite_only
async def test_register_with_login_that_fails_opens_no_session(api: Api) -> None:
    await api.register("mei")

    taken = await api.client.post(
        "/api/v1/auth/register", params={"login": "true"}, json={"username": "MEI", "password": PASSWORD}
    )
    bad_flag = await api.client.post(
        "/api/v1/auth/register", params={"login": "maybe"}, json={"username": "other", "password": PASSWORD}
    )

    assert_error(taken, 409, "conflict")
    assert_error(bad_flag, 422, "validation_error")
    assert await api.redis.keys("jilu:session:*") == []
    assert await api.user_count() == 1


@sqlite_only
async def test_the_openapi_shows_both_register_answers(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    operation = document["paths"]["/api/v1/auth/register"]["post"]

    schema = operation["responses"]["201"]["content"]["application/json"]["schema"]
    refs = {option["$ref"].rsplit("/", 1)[1] for option in schema["anyOf"]}
    assert refs == {"UserPublic", "RegisteredSession"}
    assert set(document["components"]["schemas"]["RegisteredSession"]["properties"]) == {"user", "tokens"}
    assert any(parameter["name"] == "login" for parameter in operation["parameters"])
