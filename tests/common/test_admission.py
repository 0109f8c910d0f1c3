"""The scripts that ask Redis everything about an authenticated request at once
(`common.security.admission`), and the verified access tokens `TokenCodec` remembers: each
decides as the code before it did, against the real Redis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from redis.asyncio import Redis

from common.security import tokens
from common.security.admission import (
    REVOKED_TOKEN,
    STANDS,
    UNKNOWN,
    Admission,
    _Script,
    admit_access_token,
    admit_api_token,
)
from common.security.api_tokens import REVOKED, api_token_cache_key, api_token_used_key
from common.security.rate_limit import RateLimiter
from common.security.sessions import decode_standing, deny_access_token, open_session, standing_key
from common.security.tokens import ExpiredToken, InvalidToken, TokenCodec
from tests.round_trips import counting_round_trips

SECRET = "s" * 40


async def _session(redis: Redis) -> tuple[str, str, str]:
    user_id, session_id, jti = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    await open_session(redis, user_id, session_id, uuid.uuid4().hex, 3600)
    return user_id, session_id, jti


@pytest.mark.parametrize("stored", ["1:user", "1:admin", "1", "0:user", "0", "10:user", "", None])
async def test_a_request_is_counted_exactly_when_its_cached_standing_lets_it_in(
    redis: Redis, stored: str | None
) -> None:
    user_id, session_id, jti = await _session(redis)
    if stored is not None:
        await redis.set(standing_key(user_id), stored)
    window = RateLimiter(redis).fixed_window("10/minute", "user", user_id)

    admission = await admit_access_token(redis, user_id, session_id, jti, window, counts=True)

    standing = decode_standing(stored)  # as authentication reads it in Python
    lets_in = standing is not None and standing.is_active
    assert admission == Admission(STANDS, stored or None, 1 if lets_in else 0, -1, False)
    assert await redis.get(window.key) == ("1" if lets_in else None)


async def test_a_request_whose_scopes_do_not_allow_it_is_not_counted(redis: Redis) -> None:
    user_id, session_id, jti = await _session(redis)
    await redis.set(standing_key(user_id), "1:user")
    window = RateLimiter(redis).fixed_window("10/minute", "user", user_id)

    admission = await admit_access_token(redis, user_id, session_id, jti, window, counts=False)

    assert (admission.credential, admission.standing, admission.count) == (STANDS, "1:user", 0)
    assert await redis.get(window.key) is None


async def test_an_ended_session_a_denied_token_or_another_users_session_is_unknown(redis: Redis) -> None:
    user_id, session_id, jti = await _session(redis)
    await redis.set(standing_key(user_id), "1:user")
    window = RateLimiter(redis).fixed_window("10/minute", "user", user_id)
    denied = uuid.uuid4().hex
    await deny_access_token(redis, denied, datetime.now(UTC) + timedelta(minutes=5))

    refused = [
        await admit_access_token(redis, user_id, uuid.uuid4().hex, jti, window, counts=True),  # no such session
        await admit_access_token(redis, user_id, session_id, denied, window, counts=True),
        await admit_access_token(redis, "someone-else", session_id, jti, window, counts=True),
    ]

    assert [admission.credential for admission in refused] == [UNKNOWN] * 3
    assert await redis.get(window.key) is None


async def test_past_the_limit_the_script_answers_the_windows_time_left(redis: Redis) -> None:
    user_id, session_id, jti = await _session(redis)
    await redis.set(standing_key(user_id), "1:user")
    window = RateLimiter(redis).fixed_window("2/minute", "user", user_id)

    answers = [await admit_access_token(redis, user_id, session_id, jti, window, counts=True) for _ in range(3)]

    assert [(answer.count, answer.ttl) for answer in answers[:2]] == [(1, -1), (2, -1)]
    assert answers[2].count == 3
    assert 0 < answers[2].ttl <= 60


async def test_an_api_token_record_is_cached_where_none_is_and_never_over_a_tombstone(redis: Redis) -> None:
    user_id, token_id, token_hash = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex * 2
    cache, used = api_token_cache_key(token_hash), api_token_used_key(token_id)
    record = f'{{"id": "{token_id}", "user_id": "{user_id}", "scopes": ["read"], "expires_at": null}}'
    await redis.set(standing_key(user_id), "1:user")
    window = RateLimiter(redis).fixed_window("10/minute", "user", user_id)

    async def admit(read: str | None) -> Admission:
        return await admit_api_token(
            redis, token_hash, token_id, user_id, window, counts=True, read=read, cache_seconds=60, used_seconds=60
        )

    assert await admit(None) == Admission(UNKNOWN, None, 0, -1, False)  # not cached: read the database
    await redis.set(cache, REVOKED, ex=60)  # revoked while the database was read
    assert await admit(record) == Admission(REVOKED_TOKEN, None, 0, -1, False)
    assert (await redis.get(cache), await redis.get(used), await redis.get(window.key)) == (REVOKED, None, None)

    await redis.delete(cache)
    assert await admit(record) == Admission(STANDS, "1:user", 1, -1, True)
    assert await admit(None) == Admission(STANDS, "1:user", 2, -1, False)  # cached now, and used
    assert await redis.get(cache) == record
    assert 0 < await redis.ttl(cache) <= 60


async def test_a_script_the_server_has_not_seen_is_loaded_then_run_by_its_sha(redis: Redis) -> None:
    script = _Script(f"-- {uuid.uuid4().hex}\nreturn {{1, ARGV[1], 0, -1, 0}}")  # new to this server
    assert await redis.script_exists(script.sha) == [False]

    first = await script(redis, [], ["1:user"])
    with counting_round_trips() as trips:
        again = await script(redis, [], ["1:user"])

    assert first == again == Admission(STANDS, "1:user", 0, -1, False)
    assert await redis.script_exists(script.sha) == [True]
    assert trips.count == 1


def test_a_remembered_access_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = TokenCodec(SECRET, access_minutes=15, refresh_days=1)
    issued = codec.issue("access", "user", "session", ("read",))
    assert codec.decode(issued.token, "access") == issued.claims  # verified, then remembered
    expires = issued.claims.exp.timestamp()

    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: expires - 1))
    assert codec.decode(issued.token, "access") == issued.claims
    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: expires))  # `exp <= now`, as PyJWT has it
    with pytest.raises(ExpiredToken):
        codec.decode(issued.token, "access")


def test_only_the_very_same_token_of_the_same_kind_and_codec_is_remembered() -> None:
    codec = TokenCodec(SECRET, access_minutes=15, refresh_days=1)
    token = codec.issue("access", "user", "session", ("read", "write")).token
    codec.decode(token, "access")
    header, payload, signature = token.split(".")
    forged = codec.issue("access", "intruder", "session", ("read", "write")).token.split(".")[1]
    tampered = ("B" if signature[0] == "A" else "A") + signature[1:]

    for other in (f"{header}.{forged}.{signature}", f"{header}.{payload}.{tampered}", token + " "):
        with pytest.raises(InvalidToken):
            codec.decode(other, "access")
    with pytest.raises(InvalidToken):
        codec.decode(token, "refresh")
    with pytest.raises(InvalidToken):
        TokenCodec("t" * 40, access_minutes=15, refresh_days=1).decode(token, "access")


def test_the_remembered_tokens_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "VERIFIED_KEPT", 2)
    codec = TokenCodec(SECRET, access_minutes=15, refresh_days=1)
    issued = [codec.issue("access", f"user-{n}", "session", ("read",)) for n in range(3)]

    for token in issued:
        assert codec.decode(token.token, "access") == token.claims

    assert list(codec._verified_access) == [issued[1].token, issued[2].token]  # the oldest went first
    assert codec.decode(issued[0].token, "access") == issued[0].claims  # verified again
