"""Logging in, refresh rotation with reuse detection, and logout."""

from __future__ import annotations

import asyncio

import jwt
import pytest

from tests.support import assert_error
from user_service.tests.helpers import PASSWORD, Account, Api, MakeApi, bearer, sqlite_only

PAIR_FIELDS = {"access_token", "refresh_token", "token_type", "expires_in"}


def unverified_claims(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.mark.parametrize("typed", ["Alice", "alice", "ALICE"])
async def test_login_with_the_oauth2_form_in_any_case(api: Api, typed: str) -> None:
    user = await api.register("Alice")

    response = await api.token(typed)

    assert response.status_code == 200, response.text
    pair = response.json()
    assert set(pair) == PAIR_FIELDS
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 900
    me = await api.me(pair["access_token"])
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]


async def test_tokens_carry_the_pinned_claims(api: Api) -> None:
    user = await api.register("claims")
    pair = await api.login("claims")

    access = unverified_claims(pair["access_token"])
    refresh = unverified_claims(pair["refresh_token"])

    assert jwt.get_unverified_header(pair["access_token"])["alg"] == "HS256"
    for claims, typ in ((access, "access"), (refresh, "refresh")):
        assert {"iss", "aud", "sub", "exp", "iat", "jti", "typ"} <= set(claims)
        assert (claims["iss"], claims["aud"], claims["sub"], claims["typ"]) == ("jilu", "jilu-api", user["id"], typ)
    assert access["exp"] - access["iat"] == 15 * 60  # type: ignore[operator]
    assert refresh["exp"] - refresh["iat"] == 30 * 86400  # type: ignore[operator]
    # The two kinds carry mutually exclusive claims.
    assert "sid" in access and "scope" in access and "fam" not in access
    assert "fam" in refresh and "sid" not in refresh and "scope" not in refresh
    assert access["jti"] != refresh["jti"]


@sqlite_only
async def test_lifetimes_follow_the_settings(make_api: MakeApi) -> None:
    async with make_api(access_token_minutes=5, refresh_token_days=2) as api:
        await api.register("short")
        pair = await api.login("short")

    assert pair["expires_in"] == 300
    refresh = unverified_claims(pair["refresh_token"])
    assert refresh["exp"] - refresh["iat"] == 2 * 86400  # type: ignore[operator]


async def test_a_wrong_password_and_an_unknown_user_answer_alike(api: Api) -> None:
    await api.register("known")

    wrong_password = await api.token("known", "not-the-password-1")
    unknown_user = await api.token("nobody-here", "not-the-password-1")

    assert_error(wrong_password, 401, "invalid_credentials")
    assert_error(unknown_user, 401, "invalid_credentials")
    assert wrong_password.json() == unknown_user.json()
    assert wrong_password.headers["www-authenticate"] == unknown_user.headers["www-authenticate"]
    assert wrong_password.headers["www-authenticate"] == 'Bearer realm="jilu"'


async def test_a_deactivated_user_cannot_log_in(api: Api, admin: Account, alice: Account) -> None:
    deactivate = await api.client.patch(
        f"/api/v1/admin/users/{alice.id}", json={"is_active": False}, headers=admin.headers
    )
    assert deactivate.status_code == 200, deactivate.text

    assert_error(await api.token("alice"), 403, "forbidden")
    # A wrong password still answers 401: the account's state is told only to its owner.
    assert_error(await api.token("alice", "wrong-password-9"), 401, "invalid_credentials")


@sqlite_only
@pytest.mark.parametrize(
    ("data", "kwargs"),
    [
        ({"username": "someone"}, {}),
        ({"password": PASSWORD}, {}),
        (
            None,
            {
                "content": b'{"username": "someone", "password": "plum-Lantern-42"}',
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
        ),
    ],
    ids=["no-password", "no-username", "json-labelled-as-form"],
)
async def test_a_malformed_login_is_422(api: Api, data: dict[str, str] | None, kwargs: dict[str, object]) -> None:
    response = await api.client.post("/api/v1/auth/token", data=data, **kwargs)  # type: ignore[arg-type]

    assert_error(response, 422, "validation_error")


# -- refresh -------------------------------------------------------------------------


async def test_refresh_gives_a_working_pair_and_rotates_again(api: Api, alice: Account) -> None:
    first = await api.refresh(alice.refresh)
    assert first.status_code == 200, first.text
    pair = first.json()
    assert set(pair) == PAIR_FIELDS
    assert pair["refresh_token"] != alice.refresh
    assert (await api.me(pair["access_token"])).json()["id"] == alice.id

    second = await api.refresh(pair["refresh_token"])

    assert second.status_code == 200, second.text
    assert (await api.me(second.json()["access_token"])).status_code == 200


async def test_reusing_a_rotated_refresh_token_revokes_the_family(api: Api, alice: Account) -> None:
    # Rotated twice: the first token is no longer the one just replaced, so no grace window
    # covers it (test_refresh_grace.py has the window itself).
    middle = (await api.refresh(alice.refresh)).json()
    rotated = (await api.refresh(middle["refresh_token"])).json()
    other_session = await api.login("alice")

    reuse = await api.refresh(alice.refresh)

    assert_error(reuse, 401, "session_ended")
    # Everything the family issued is dead: the pair the legitimate rotation gave, and the
    # access token of the original login.
    assert_error(await api.me(rotated["access_token"]), 401, "session_ended")
    assert_error(await api.refresh(rotated["refresh_token"]), 401, "session_ended")
    assert_error(await api.me(alice.access), 401, "session_ended")
    # Another session of the same user is a different family and goes on.
    assert (await api.me(other_session["access_token"])).status_code == 200
    assert (await api.refresh(other_session["refresh_token"])).status_code == 200


async def test_without_a_grace_window_of_two_concurrent_refreshes_exactly_one_wins(make_api: MakeApi) -> None:
    async with make_api(refresh_grace_seconds=0) as api:
        alice = await api.account("alice")
        responses = await asyncio.gather(api.refresh(alice.refresh), api.refresh(alice.refresh))

        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 401], [r.text for r in responses]
        winner = next(r for r in responses if r.status_code == 200).json()
        # The loser presented a token that had just been rotated: that is reuse, so the family
        # ends and the winner must log in again too.
        assert_error(await api.refresh(winner["refresh_token"]), 401, "session_ended")


async def test_an_access_token_is_not_a_refresh_token(api: Api, alice: Account) -> None:
    assert_error(await api.refresh(alice.access), 401, "invalid_token")
    # ... and trying did not hurt the session.
    assert (await api.refresh(alice.refresh)).status_code == 200


@sqlite_only
@pytest.mark.parametrize(
    "body",
    [{}, {"refresh_token": ""}, {"refresh_token": "x", "extra": 1}, {"refresh_token": "x" * 5000}],
    ids=["missing", "empty", "extra-field", "too-long"],
)
async def test_a_malformed_refresh_request_is_422(api: Api, body: dict[str, object]) -> None:
    assert_error(await api.client.post("/api/v1/auth/refresh", json=body), 422, "validation_error")


@sqlite_only
async def test_refresh_of_garbage_is_401(api: Api) -> None:
    assert_error(await api.refresh("not-a-token"), 401, "invalid_token")


# -- logout --------------------------------------------------------------------------


async def test_logout_kills_the_access_and_the_refresh_token(api: Api, alice: Account) -> None:
    other_session = await api.login("alice")

    response = await api.client.post("/api/v1/auth/logout", headers=alice.headers)

    assert response.status_code == 204
    assert response.content == b""
    assert_error(await api.me(alice.access), 401, "session_ended")
    assert_error(await api.refresh(alice.refresh), 401, "session_ended")
    # The access token's id is on the denylist until it would have expired anyway.
    jti = unverified_claims(alice.access)["jti"]
    ttl = await api.redis.ttl(f"jilu:denied:{jti}")
    assert 0 < ttl <= 15 * 60 + 1
    # Only this session ended.
    assert (await api.me(other_session["access_token"])).status_code == 200


async def test_logout_after_a_refresh_ends_the_rotated_pair(api: Api, alice: Account) -> None:
    pair = (await api.refresh(alice.refresh)).json()

    assert (await api.client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"]))).status_code == 204

    assert_error(await api.refresh(pair["refresh_token"]), 401, "session_ended")
    assert_error(await api.me(pair["access_token"]), 401, "session_ended")


@sqlite_only
async def test_logout_twice_is_401(api: Api, alice: Account) -> None:
    assert (await api.client.post("/api/v1/auth/logout", headers=alice.headers)).status_code == 204

    assert_error(await api.client.post("/api/v1/auth/logout", headers=alice.headers), 401, "session_ended")


async def test_logout_with_an_api_token_is_403(api: Api, alice: Account) -> None:
    created = await api.create_api_token(alice.access)

    response = await api.client.post("/api/v1/auth/logout", headers=bearer(created["token"]))

    assert_error(response, 403, "forbidden")
    assert (await api.me(created["token"])).status_code == 200
    assert (await api.me(alice.access)).status_code == 200


@sqlite_only
async def test_logout_without_a_token_is_401(api: Api) -> None:
    response = await api.client.post("/api/v1/auth/logout")

    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == 'Bearer realm="jilu"'
