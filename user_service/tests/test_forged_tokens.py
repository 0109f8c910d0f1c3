"""Forged and misused tokens are refused with 401 (`invalid_token`, or `token_expired` /
`session_ended` for a genuine signature whose token expired or whose session is unknown).

Each forgery starts from the claims of a real, live token and changes one thing, and the
unchanged claims re-signed with the right key are the positive control: the refusal is for
that one thing, not for some other detail of how the test made the token.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from common.security.keys import derive_key
from tests.support import assert_error
from user_service.tests.helpers import Account, Api, MakeApi, sqlite_only

pytestmark = [sqlite_only, pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")]

Claims = dict[str, Any]


def claims_of(token: str) -> Claims:
    return jwt.decode(token, options={"verify_signature": False})


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def jwt_key(api: Api) -> bytes:
    return derive_key(api.settings.secret, "jwt")


def sign(api: Api, claims: Claims, **kwargs: Any) -> str:
    return jwt.encode(claims, jwt_key(api), algorithm=kwargs.pop("algorithm", "HS256"), **kwargs)


def without(claims: Claims, name: str) -> Claims:
    return {k: v for k, v in claims.items() if k != name}


FORGERIES: dict[str, Callable[[Api, Claims], str]] = {
    "alg-none": lambda api, c: f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(c)}.",
    "alg-none-with-signature": lambda api, c: (
        f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(c)}.{sign(api, c).split('.')[2]}"
    ),
    "another-key": lambda api, c: jwt.encode(c, "another-key-of-at-least-32-bytes!", algorithm="HS256"),
    "the-raw-instance-secret": lambda api, c: jwt.encode(c, api.settings.secret, algorithm="HS256"),
    "HS512-with-the-right-key": lambda api, c: sign(api, c, algorithm="HS512"),
    "wrong-aud": lambda api, c: sign(api, {**c, "aud": "someone-else"}),
    "wrong-iss": lambda api, c: sign(api, {**c, "iss": "evil"}),
    "expired": lambda api, c: sign(api, {**c, "iat": int(time.time()) - 3600, "exp": int(time.time()) - 60}),
    "no-exp": lambda api, c: sign(api, without(c, "exp")),
    "no-jti": lambda api, c: sign(api, without(c, "jti")),
    "no-aud": lambda api, c: sign(api, without(c, "aud")),
    "no-sid": lambda api, c: sign(api, without(c, "sid")),
    "typ-refresh": lambda api, c: sign(api, {**c, "typ": "refresh"}),
    "another-users-sub": lambda api, c: sign(api, {**c, "sub": "someone-else"}),
    "unknown-session": lambda api, c: sign(api, {**c, "sid": "0" * 32}),
    "tampered-payload": lambda api, c: ".".join(
        [sign(api, c).split(".")[0], b64({**c, "sub": "x"}), sign(api, c).split(".")[2]]
    ),
    "access-with-fam-too": lambda api, c: sign(api, {**c, "fam": c["sid"]}),
}
# What a forgery is refused as when not `invalid_token`: these are signed with the right key.
FORGERY_CODES = {"expired": "token_expired", "another-users-sub": "session_ended", "unknown-session": "session_ended"}
INVALID_TOKEN_CHALLENGE = 'Bearer realm="jilu", error="invalid_token", error_description="'


async def test_the_positive_control_is_accepted(api: Api, alice: Account) -> None:
    resigned = sign(api, claims_of(alice.access))

    response = await api.me(resigned)

    assert response.status_code == 200, response.text
    assert response.json()["id"] == alice.id


@pytest.mark.parametrize("forgery", list(FORGERIES))
async def test_a_forged_access_token_is_401(api: Api, alice: Account, forgery: str) -> None:
    token = FORGERIES[forgery](api, claims_of(alice.access))

    response = await api.me(token)

    assert_error(response, 401, FORGERY_CODES.get(forgery, "invalid_token"))
    assert response.headers["www-authenticate"].startswith(INVALID_TOKEN_CHALLENGE)


async def test_a_refresh_token_is_not_an_access_token(api: Api, alice: Account) -> None:
    assert_error(await api.me(alice.refresh), 401, "invalid_token")


async def test_a_refresh_token_relabelled_as_access_is_401(api: Api, alice: Account) -> None:
    relabelled = sign(api, {**claims_of(alice.refresh), "typ": "access"})

    assert_error(await api.me(relabelled), 401, "invalid_token")


async def test_an_access_token_relabelled_as_refresh_is_401(api: Api, alice: Account) -> None:
    relabelled = sign(api, {**claims_of(alice.access), "typ": "refresh"})

    assert_error(await api.refresh(relabelled), 401, "invalid_token")
    # Trying did not end the real session.
    assert (await api.refresh(alice.refresh)).status_code == 200


async def test_an_access_token_at_refresh_is_401(api: Api, alice: Account) -> None:
    assert_error(await api.refresh(alice.access), 401, "invalid_token")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"aud": "someone-else"}, "invalid_token"),
        ({"iss": "evil"}, "invalid_token"),
        # An expired refresh token cannot be refreshed: the session is over, log in again.
        ({"exp": 1_000_000_000, "iat": 999_999_000}, "session_ended"),
    ],
    ids=["wrong-aud", "wrong-iss", "expired"],
)
async def test_a_forged_refresh_token_is_401(api: Api, alice: Account, change: Claims, code: str) -> None:
    forged = sign(api, {**claims_of(alice.refresh), **change})

    assert_error(await api.refresh(forged), 401, code)
    assert (await api.refresh(alice.refresh)).status_code == 200


async def test_a_refresh_token_signed_with_another_key_is_401(api: Api, alice: Account) -> None:
    forged = jwt.encode(claims_of(alice.refresh), "another-key-of-at-least-32-bytes!", algorithm="HS256")

    assert_error(await api.refresh(forged), 401, "invalid_token")


async def test_a_refresh_token_for_another_user_is_401(api: Api, admin: Account, alice: Account) -> None:
    # The right key, alice's live family, but the admin's id: a family belongs to one user.
    forged = sign(api, {**claims_of(alice.refresh), "sub": admin.id})

    assert_error(await api.refresh(forged), 401, "session_ended")


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        ("Bearer garbage", "invalid_token"),
        ("Bearer a.b.c", "invalid_token"),
        ("Bearer jilu_pat_nope", "invalid_token"),
        # No bearer token at all: no credentials, so no `error` in the challenge (RFC 6750 §3.1).
        ("Bearer ", "unauthorized"),
        ("Basic YWxpY2U6c2VjcmV0", "unauthorized"),
        ("garbage", "unauthorized"),
    ],
)
async def test_garbage_credentials_are_401(api: Api, alice: Account, authorization: str, code: str) -> None:
    response = await api.client.get("/api/v1/users/me", headers={"Authorization": authorization})

    assert_error(response, 401, code)
    if code == "unauthorized":
        assert response.headers["www-authenticate"] == 'Bearer realm="jilu"'
    else:
        assert response.headers["www-authenticate"].startswith(INVALID_TOKEN_CHALLENGE)


async def test_no_credentials_are_401_with_a_bearer_challenge(api: Api) -> None:
    response = await api.client.get("/api/v1/users/me")

    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == 'Bearer realm="jilu"'


async def test_a_token_of_another_instance_is_401(make_api: MakeApi, alice: Account) -> None:
    # Same code, another secret: what one instance signed means nothing to another.
    async with make_api(secret_key="another-instance-secret-of-32-chars!!") as other:
        assert_error(await other.me(alice.access), 401, "invalid_token")


async def test_a_mangled_api_token_is_401(api: Api, alice: Account) -> None:
    created = await api.create_api_token(alice.access)
    token = created["token"]
    assert (await api.me(token)).status_code == 200

    assert_error(await api.me(token[:-2] + ("xx" if not token.endswith("xx") else "yy")), 401, "invalid_token")
    assert_error(await api.me(token[:13]), 401, "invalid_token")  # the prefix a listing shows
    assert_error(await api.me(token.upper()), 401, "invalid_token")
