"""Who is calling, verified locally on every service (`common.deps.CurrentUser`, `AdminUser`).

A bearer token is either a JWT access token or a personal API token (`jilu_pat_...`). Both
are checked without calling user_service: the JWT by its signature and claims, then against
Redis (its session still open, its id not denied); an API token by its hash (cached briefly
in Redis). The user's standing (active, role) comes from Redis, else the database. What
Redis is asked, the per-user rate limit included, is one round trip
(`common.security.admission`). If Redis cannot be reached, authentication fails closed with 503.

A refusal is a 401 whose code tells the client what to do: `unauthorized` (no credentials),
`token_expired` (refresh, then retry), `invalid_token` (not a token of ours, or a revoked or
expired API token) or `session_ended` (log in again); see `common.errors`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from fastapi.security import HTTPBearer
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.errors import Forbidden, ServiceUnavailable, SessionEnded, TokenExpired, TokenInvalid
from common.security.admission import STANDS, UNKNOWN, Admission, admit_access_token, admit_api_token
from common.security.api_tokens import API_TOKEN_PREFIX, CACHE_TTL, REVOKED, api_token_cache_key, hash_api_token
from common.security.rate_limit import RateLimiter
from common.security.sessions import (
    Standing,
    cache_standing,
    decode_standing,
    denylist_key,
    session_key,
    standing_key,
)
from common.security.tokens import ExpiredToken, InvalidToken, TokenCodec
from common.users.models import ApiToken, User

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
LAST_USED_RESOLUTION = 60  # seconds between two writes of an API token's last_used_at

bearer_scheme = HTTPBearer(auto_error=False, description="An access token or a personal API token")


@dataclass(frozen=True)
class AuthUser:
    """The authenticated caller."""

    id: str
    role: str
    scopes: frozenset[str]
    session_id: str | None = None  # JWT sessions only
    token_jti: str | None = None
    token_expires_at: datetime | None = None
    api_token_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


async def load_standing(
    redis: Redis, sessionmaker: async_sessionmaker[AsyncSession], user_id: str, cached: str | None
) -> Standing | None:
    """`user_id`'s standing: `cached` (the value stored under `standing_key`, if any), else
    the database's, which is then cached. None: no such user. Raises `RedisError`."""
    standing = decode_standing(cached)
    if standing is not None:
        return standing
    async with sessionmaker() as session:
        row = (await session.execute(select(User.is_active, User.role).where(User.id == user_id))).first()
    if row is None:
        return None
    standing = Standing(is_active=bool(row.is_active), role=str(row.role))
    await cache_standing(redis, user_id, standing, authoritative=False)
    return standing


async def account_standing(
    redis: Redis, sessionmaker: async_sessionmaker[AsyncSession], user_id: str
) -> Standing | None:
    """`user_id`'s standing as authentication sees it (Redis, else the database), for
    credentials that are not tokens (a signed URL). None: no such user. Raises `RedisError`."""
    cached: str | None = await redis.get(standing_key(user_id))  # type: ignore[assignment]  # decode_responses
    return await load_standing(redis, sessionmaker, user_id, cached)


async def _session_state(redis: Redis, user_id: str, session_id: str, jti: str) -> tuple[bool, str | None]:
    """In one round trip: whether an access token's session stands (the token not logged out,
    the session open and `user_id`'s), and the account's cached standing as stored (or None)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.exists(denylist_key(jti))
        pipe.hget(session_key(session_id), "user_id")
        pipe.get(standing_key(user_id))
        denied, session_owner, standing = await pipe.execute()
    return not denied and session_owner == user_id, standing


async def _from_access_token(
    codec: TokenCodec, redis: Redis, token: str, needed: str, rate: RateLimiter, user_rate: str
) -> tuple[AuthUser, Admission]:
    try:
        claims = codec.decode(token, "access")
    except ExpiredToken as exc:
        raise TokenExpired("the access token has expired; refresh it") from exc
    except InvalidToken as exc:
        raise TokenInvalid("invalid access token") from exc
    window = rate.fixed_window(user_rate, "user", claims.sub)
    admission = await admit_access_token(
        redis, claims.sub, claims.sid, claims.jti, window, counts=needed in claims.scopes
    )
    if admission.credential != STANDS:
        raise SessionEnded("the session has ended; log in again")
    user = AuthUser(
        id=claims.sub,
        role="user",
        scopes=frozenset(claims.scopes),
        session_id=claims.sid,
        token_jti=claims.jti,
        token_expires_at=claims.exp,
    )
    return user, admission


@dataclass(frozen=True)
class ApiTokenRecord:
    """What never changes about an API token, as cached under `api_token_cache_key`."""

    id: str
    user_id: str
    scopes: tuple[str, ...]
    expires_at: datetime | None

    def to_json(self) -> str:
        expires_at = self.expires_at.isoformat() if self.expires_at else None
        return json.dumps(
            {"id": self.id, "user_id": self.user_id, "scopes": list(self.scopes), "expires_at": expires_at}
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> ApiTokenRecord:
        record = json.loads(raw)
        expires_at = datetime.fromisoformat(record["expires_at"]) if record["expires_at"] else None
        return cls(str(record["id"]), str(record["user_id"]), tuple(record["scopes"]), expires_at)


# The records of the API tokens this process has seen, by hash. A record never changes, so
# with it the keys a request needs are known before Redis is asked, and the request takes one
# round trip. Whether the token still stands (cached and not revoked, else in the database)
# is asked every time, never of this memo. Oldest first out.
_api_token_records: dict[str, ApiTokenRecord] = {}
API_TOKEN_RECORDS_KEPT = 4096


def _remember(token_hash: str, record: ApiTokenRecord) -> None:
    if token_hash not in _api_token_records and len(_api_token_records) >= API_TOKEN_RECORDS_KEPT:
        del _api_token_records[next(iter(_api_token_records))]
    _api_token_records[token_hash] = record


async def _record_from_database(sessionmaker: async_sessionmaker[AsyncSession], token_hash: str) -> ApiTokenRecord:
    async with sessionmaker() as session:
        row = (await session.execute(select(ApiToken).where(ApiToken.token_hash == token_hash))).scalar()
    if row is None:
        _api_token_records.pop(token_hash, None)
        raise TokenInvalid("invalid API token")
    record = ApiTokenRecord(row.id, row.user_id, tuple(row.scopes), row.expires_at)
    _remember(token_hash, record)
    return record


async def _from_api_token(
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    token: str,
    needed: str,
    rate: RateLimiter,
    user_rate: str,
) -> tuple[AuthUser, Admission]:
    token_hash = hash_api_token(token)
    record = _api_token_records.get(token_hash)
    read = False  # whether `record` was just read from the database (for the script to cache)
    if record is None:  # the first use seen by this process: the cache, else the database
        cached = await redis.get(api_token_cache_key(token_hash))
        if cached == REVOKED:
            raise TokenInvalid("invalid API token")
        if cached is None:
            record, read = await _record_from_database(sessionmaker, token_hash), True
        else:
            record = ApiTokenRecord.from_json(cached)
            _remember(token_hash, record)
    while True:
        if record.expires_at and record.expires_at <= datetime.now(UTC):
            # Not `token_expired`: that tells a client to refresh, and an API token cannot be.
            raise TokenInvalid("the API token has expired")
        admission = await admit_api_token(
            redis,
            token_hash,
            record.id,
            record.user_id,
            rate.fixed_window(user_rate, "user", record.user_id),
            counts=needed in record.scopes,
            read=record.to_json() if read else None,
            cache_seconds=CACHE_TTL,
            used_seconds=LAST_USED_RESOLUTION,
        )
        if admission.credential != UNKNOWN or read:
            break
        # No longer cached (its minute ran out): the database says whether it still stands.
        record, read = await _record_from_database(sessionmaker, token_hash), True
    if admission.credential != STANDS:  # revoked (its tombstone written, maybe while read)
        _api_token_records.pop(token_hash, None)
        raise TokenInvalid("invalid API token")
    if admission.first_use:
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(ApiToken).where(ApiToken.id == record.id).values(last_used_at=datetime.now(UTC))
            )
    return AuthUser(id=record.user_id, role="user", scopes=frozenset(record.scopes), api_token_id=record.id), admission


async def authenticate(
    token: str,
    method: str,
    *,
    tokens: TokenCodec,
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    rate_limiter: RateLimiter,
    user_rate: str,
) -> AuthUser:
    """The caller a bearer `token` names, for a request of `method`: its scopes must allow
    the method, and the call counts against the caller's `user_rate`. One Redis round trip
    when the account's standing is cached (`common.security.admission`)."""
    needed = "read" if method in SAFE_METHODS else "write"
    try:
        if token.startswith(API_TOKEN_PREFIX):
            user, admission = await _from_api_token(redis, sessionmaker, token, needed, rate_limiter, user_rate)
        else:
            user, admission = await _from_access_token(tokens, redis, token, needed, rate_limiter, user_rate)
        standing = await load_standing(redis, sessionmaker, user.id, admission.standing)
    except RedisError as exc:
        raise ServiceUnavailable("authentication is unavailable; try again shortly") from exc
    if standing is None:
        raise TokenInvalid("the token names no known user")
    if not standing.is_active:
        raise Forbidden("this account is deactivated")
    if needed not in user.scopes:
        raise Forbidden(f"this token lacks the '{needed}' scope")
    if admission.count:
        rate_limiter.fixed_window(user_rate, "user", user.id).admit(admission.count, admission.ttl)
    else:  # the standing was not cached, so the script counted nothing: count now
        await rate_limiter.check(user_rate, "user", user.id)
    return replace(user, role=standing.role)


async def still_signed_in(redis: Redis, sessionmaker: async_sessionmaker[AsyncSession], user: AuthUser) -> bool:
    """For answers that outlive their request (the event stream): whether `user`'s
    credentials still stand. A JWT's session must be open, its token not logged out and the
    account not known to be deactivated (deactivation ends its sessions too); an API token
    must still exist, be unexpired and its account be active. Raises `RedisError` when Redis is away."""
    if user.session_id is not None and user.token_jti is not None:
        session_open, cached = await _session_state(redis, user.id, user.session_id, user.token_jti)
        standing = decode_standing(cached)
        return session_open and (standing is None or standing.is_active)
    if user.api_token_id is not None:
        statement = (
            select(User.is_active, ApiToken.expires_at)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.id == user.api_token_id, User.id == user.id)
        )
        async with sessionmaker() as session:
            row = (await session.execute(statement)).first()
        if row is None or not row.is_active:
            return False
        return row.expires_at is None or row.expires_at > datetime.now(UTC)
    return False
