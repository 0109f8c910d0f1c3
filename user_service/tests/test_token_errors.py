"""Each 401 says which case it is, in the body's `error` and in the RFC 6750 challenge:
`unauthorized` (no credentials), `token_expired` (refresh now), `invalid_token` (not a token
this server accepts), `session_ended` (log in again); `invalid_credentials` at login."""

from __future__ import annotations

import httpx
import jwt

from common.errors import TokenInvalid
from common.security.tokens import TokenCodec
from tests.support import assert_error
from user_service.tests.helpers import Account, Api, bearer, sqlite_only

pytestmark = sqlite_only

NO_CREDENTIALS = 'Bearer realm="jilu"'


def challenge(description: str) -> str:
    return f'Bearer realm="jilu", error="invalid_token", error_description="{description}"'


def assert_refused(response: httpx.Response, code: str, description: str) -> None:
    """A 401 with `code`, its detail also the challenge's error_description."""
    assert assert_error(response, 401, code) == description
    assert response.headers["www-authenticate"] == challenge(description)


async def test_no_credentials_is_unauthorized_with_a_bare_challenge(api: Api) -> None:
    response = await api.client.get("/api/v1/users/me")

    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == NO_CREDENTIALS


async def test_an_expired_access_token_is_token_expired(api: Api, alice: Account) -> None:
    # A codec whose tokens expire a minute before they are issued, on alice's live session.
    codec = TokenCodec(api.settings.secret, -1, 30)
    session_id = str(jwt.decode(alice.access, options={"verify_signature": False})["sid"])
    expired = codec.issue("access", alice.id, session_id, ("read", "write")).token

    assert_refused(await api.me(expired), "token_expired", "the access token has expired; refresh it")
    # Refreshing is the cure the code names.
    pair = (await api.refresh(alice.refresh)).json()
    assert (await api.me(pair["access_token"])).status_code == 200


async def test_an_expired_access_token_of_the_wrong_kind_is_invalid_not_expired(api: Api, alice: Account) -> None:
    codec = TokenCodec(api.settings.secret, 15, -1)
    expired_refresh = codec.issue("refresh", alice.id, "0" * 32).token

    assert_refused(await api.me(expired_refresh), "invalid_token", "invalid access token")


async def test_a_tampered_access_token_is_invalid_token(api: Api, alice: Account) -> None:
    header, payload, signature = alice.access.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}{'AAAA' if not signature.endswith('AAAA') else 'BBBB'}"

    assert_refused(await api.me(tampered), "invalid_token", "invalid access token")


async def test_an_unknown_api_token_is_invalid_token(api: Api) -> None:
    response = await api.me("jilu_pat_" + "x" * 43)

    assert_refused(response, "invalid_token", "invalid API token")


async def test_a_logged_out_access_token_is_session_ended(api: Api, alice: Account) -> None:
    assert (await api.client.post("/api/v1/auth/logout", headers=alice.headers)).status_code == 204

    assert_refused(await api.me(alice.access), "session_ended", "the session has ended; log in again")


async def test_refresh_refusals_name_their_case(api: Api, alice: Account) -> None:
    codec = TokenCodec(api.settings.secret, 15, -1)
    session_id = str(jwt.decode(alice.refresh, options={"verify_signature": False})["fam"])
    expired = codec.issue("refresh", alice.id, session_id).token

    assert_refused(await api.refresh(expired), "session_ended", "the refresh token has expired; log in again")
    assert_refused(await api.refresh("not-a-token"), "invalid_token", "invalid refresh token")
    assert_refused(await api.refresh(alice.access), "invalid_token", "invalid refresh token")
    # None of that touched the session.
    assert (await api.refresh(alice.refresh)).status_code == 200


async def test_a_wrong_password_is_invalid_credentials(api: Api, alice: Account) -> None:
    response = await api.token("alice", "not-the-password-1")

    assert assert_error(response, 401, "invalid_credentials") == "incorrect username or password"
    assert response.headers["www-authenticate"] == NO_CREDENTIALS


async def test_the_challenge_stays_within_rfc_6750_characters(api: Api) -> None:
    # A detail with quotes and a backslash cannot break out of the quoted string.
    header = TokenInvalid('a "quoted" \\ détail').headers["WWW-Authenticate"]

    assert header == challenge("a 'quoted' / d?tail")
    assert (await api.me("x")).headers["www-authenticate"].count('"') == 6


async def test_every_protected_route_answers_the_codes(api: Api, alice: Account) -> None:
    """The codes come from the shared dependency: any protected route answers them."""
    assert (await api.client.post("/api/v1/auth/logout", headers=alice.headers)).status_code == 204

    response = await api.client.get("/api/v1/users/me/api-tokens", headers=bearer(alice.access))

    assert_error(response, 401, "session_ended")
