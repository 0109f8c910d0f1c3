"""Login sessions in Redis: refresh-token families, the access-token denylist, and a short
cache of each user's standing (active, role) that every service reads.

- `jilu:session:{sid}` (hash: user_id, jti of the one live refresh token, iat of the pair it
  came with, and for the refresh grace window `prev`, the jti it replaced, and `prev_until`,
  until when (ms) that one may still be replayed; a password change closes the window of the
  session it keeps) lives as long as a refresh token. An
  access token is accepted only while its session exists, so logout, password change and
  deactivation end it at once on every service.
- `jilu:user:{uid}:sessions` (set of sids) finds a user's sessions to end them all.
- `jilu:denied:{jti}` marks a logged-out access token until it would have expired.
- `jilu:user:{uid}:standing` caches `is_active` and `role` ("1:user"). An administrator's
  change overwrites it; a value read from the database is cached only where none is (SET NX),
  so a read racing a deactivation cannot put "active" back. A miss falls back to the
  database, so a Redis restart never re-admits a deactivated user.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from common.cache import cache_key

STANDING_TTL = 300

# Consume a refresh token atomically. Exactly one use of the current jti rotates it (to the
# successor jti the caller derived from it) and stamps the new pair's iat. Until `prev_until`
# the token just replaced may be presented again: that answers GRACE with the stored iat, so
# the caller re-issues the very same pair, and changes nothing. Any other jti of the family
# (older, or the predecessor after its window or once its successor rotated too) is reuse:
# the whole family is revoked.
# ARGV: presented jti, successor jti, ttl, user_id, sid, now (ms), grace deadline (ms, or
# 0 for none), iat of the new pair (s).
_ROTATE = """
local current = redis.call('HGET', KEYS[1], 'jti')
if not current then return {0, 0} end
if redis.call('HGET', KEYS[1], 'user_id') ~= ARGV[4] then return {0, 0} end
if current == ARGV[1] then
  redis.call('HSET', KEYS[1], 'jti', ARGV[2], 'iat', ARGV[8])
  if tonumber(ARGV[7]) > 0 then
    redis.call('HSET', KEYS[1], 'prev', ARGV[1], 'prev_until', ARGV[7])
  else
    redis.call('HDEL', KEYS[1], 'prev', 'prev_until')
  end
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  -- The user's index of sessions must outlive every session in it, or a session kept alive
  -- by refreshes would escape `end_all_sessions` (password change, deactivation).
  redis.call('SADD', KEYS[2], ARGV[5])
  if redis.call('TTL', KEYS[2]) < tonumber(ARGV[3]) then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
  return {1, tonumber(ARGV[8])}
end
if tonumber(ARGV[7]) > 0 and current == ARGV[2] and redis.call('HGET', KEYS[1], 'prev') == ARGV[1] then
  local deadline = tonumber(redis.call('HGET', KEYS[1], 'prev_until') or '0')
  local iat = tonumber(redis.call('HGET', KEYS[1], 'iat') or '0')
  if deadline > tonumber(ARGV[6]) and iat > 0 then return {2, iat} end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[5])
return {-1, 0}
"""

ROTATED, UNKNOWN, REUSED, GRACE = 1, 0, -1, 2


def session_key(session_id: str) -> str:
    return cache_key("session", session_id)


def user_sessions_key(user_id: str) -> str:
    return cache_key("user", user_id, "sessions")


def denylist_key(jti: str) -> str:
    return cache_key("denied", jti)


def standing_key(user_id: str) -> str:
    return cache_key("user", user_id, "standing")


@dataclass(frozen=True)
class Standing:
    is_active: bool
    role: str


async def open_session(redis: Redis, user_id: str, session_id: str, refresh_jti: str, ttl: int) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(session_key(session_id), mapping={"user_id": user_id, "jti": refresh_jti})
        pipe.expire(session_key(session_id), ttl)
        pipe.sadd(user_sessions_key(user_id), session_id)
        pipe.expire(user_sessions_key(user_id), ttl)
        await pipe.execute()


@dataclass(frozen=True)
class Rotation:
    """What became of a presented refresh token, and the `iat` of the pair to answer with."""

    outcome: int  # ROTATED, GRACE, UNKNOWN (no such live session) or REUSED (family revoked)
    issued_at: int


async def rotate_refresh(
    redis: Redis,
    user_id: str,
    session_id: str,
    presented_jti: str,
    new_jti: str,
    ttl: int,
    *,
    issued_at: int,
    grace_seconds: int = 0,
) -> Rotation:
    """Rotate `presented_jti` to `new_jti` (a pair issued at `issued_at`, unix seconds); or,
    when `presented_jti` is the token `new_jti` replaced less than `grace_seconds` ago,
    GRACE with the iat that pair was issued at."""
    now_ms = int(time.time() * 1000)
    deadline = now_ms + grace_seconds * 1000 if grace_seconds > 0 else 0
    keys = [session_key(session_id), user_sessions_key(user_id)]
    args: list[str | int] = [presented_jti, new_jti, ttl, user_id, session_id, now_ms, deadline, issued_at]
    outcome, stamp = await redis.eval(_ROTATE, 2, *keys, *args)  # type: ignore[misc]
    return Rotation(int(outcome), int(stamp))


async def end_session(redis: Redis, user_id: str, session_id: str) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(session_key(session_id))
        pipe.srem(user_sessions_key(user_id), session_id)
        await pipe.execute()


GRACE_FIELDS = ("prev", "prev_until")


async def end_all_sessions(redis: Redis, user_id: str, *, keep: str | None = None) -> int:
    """End every session of a user but `keep`, and close `keep`'s refresh grace window in
    the same transaction; returns how many ended.

    The window must close: otherwise whoever holds the refresh token `keep` just replaced
    (a copy taken before the password change) could still trade it for the live pair. Once
    closed, presenting that token is reuse, which ends `keep` too (RFC 9700 §4.14.2)."""
    members = await redis.smembers(user_sessions_key(user_id))  # type: ignore[misc]
    session_ids = [str(sid) for sid in members if sid != keep]
    async with redis.pipeline(transaction=True) as pipe:
        if keep is not None:
            pipe.hdel(session_key(keep), *GRACE_FIELDS)
        if session_ids:
            pipe.delete(*(session_key(sid) for sid in session_ids))
            pipe.srem(user_sessions_key(user_id), *session_ids)
        await pipe.execute()
    return len(session_ids)


async def deny_access_token(redis: Redis, jti: str, expires_at: datetime) -> None:
    ttl = int((expires_at - datetime.now(UTC)).total_seconds()) + 1
    if ttl > 0:
        await redis.set(denylist_key(jti), "1", ex=ttl)


async def cache_standing(redis: Redis, user_id: str, standing: Standing, *, authoritative: bool) -> None:
    """`authoritative`: the change itself (an admin's); otherwise a read of the database,
    cached only if nothing newer is."""
    value = f"{int(standing.is_active)}:{standing.role}"
    await redis.set(standing_key(user_id), value, ex=STANDING_TTL, nx=not authoritative)


def decode_standing(raw: str | None) -> Standing | None:
    if not raw:
        return None
    active, _, role = raw.partition(":")
    return Standing(is_active=active == "1", role=role or "user")
