"""One Redis round trip per authenticated request (`common.security.auth`).

A Lua script per kind of credential asks Redis, at once, everything it knows of the request:
whether the credential stands (an access token's session open, its id not denied; an API
token's record cached and not revoked), the account's cached standing, and the count of the
per-user rate limit. It counts the request only when Redis lets it through so far (the
standing cached and active, the token's scopes allowing the method); otherwise it counts
nothing, and the caller refuses, or reads the standing from the database and then counts with
`RateLimiter.check` on the same window. So a refused request is never counted, as before
there was one script.

The scripts name every key they touch in KEYS, as Redis asks of scripts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from common.security.api_tokens import REVOKED, api_token_cache_key, api_token_used_key
from common.security.rate_limit import FIXED_WINDOW_LUA, FixedWindow
from common.security.sessions import denylist_key, session_key, standing_key

STANDS, UNKNOWN, REVOKED_TOKEN = 1, 0, -1  # `Admission.credential`

# The end both scripts share: KEYS[3] the user's standing, ARGV[1] '1' when the token's
# scopes allow the method, `first_use` set by the script before it. Answers
# {STANDS, standing or '', count (0: not counted), the window's TTL when refused, first_use}.
_STANDING_AND_COUNT = f"""
local standing = redis.call('GET', KEYS[3])
if not standing or string.match(standing, '^[^:]*') ~= '1' or ARGV[1] ~= '1' then
  return {{1, standing or '', 0, -1, first_use}}
end
{FIXED_WINDOW_LUA}
return {{1, standing, count, ttl, first_use}}
"""

# KEYS: the access token's denylist entry, its session, the user's standing, the rate window.
# ARGV: the scopes flag, the user id, then the window's limit and seconds.
_ACCESS = f"""
local first_use = 0
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('HGET', KEYS[2], 'user_id') ~= ARGV[2] then
  return {{0, '', 0, -1, 0}}
end
{_STANDING_AND_COUNT}"""

# KEYS: the API token's cached record, its last-use marker, the user's standing, the window.
# ARGV: the scopes flag, the revocation tombstone, the record just read from the database
# ('' if none: then a token not in the cache is UNKNOWN, for the caller to read it), the
# cache's seconds, the last-use marker's seconds, the window's limit and seconds. The marker
# is set (`first_use`: write `last_used_at`) whatever the standing, as it always was.
_API_TOKEN = f"""
local cached = redis.call('GET', KEYS[1])
if cached == ARGV[2] then return {{-1, '', 0, -1, 0}} end
if not cached then
  if ARGV[3] == '' then return {{0, '', 0, -1, 0}} end
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
end
local first_use = 0
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[5]) then first_use = 1 end
{_STANDING_AND_COUNT}"""


@dataclass(frozen=True)
class Admission:
    """What Redis answered of a request's credential."""

    credential: int  # STANDS, UNKNOWN (session ended; API token not cached) or REVOKED_TOKEN
    standing: str | None  # the cached standing as stored, or None
    count: int  # the request's count in the rate window; 0: not counted
    ttl: int  # the window's remaining seconds, read only when the count is past the limit
    first_use: bool  # an API token's first use in its last-use resolution


class _Script:
    """A script run by its SHA1 (EVALSHA), loaded by EVAL when the server does not have it
    (a new or restarted Redis): one round trip either way."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, redis: Redis, keys: list[str], args: list[str | int]) -> Admission:
        try:
            reply = await redis.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[misc]
        except NoScriptError:
            reply = await redis.eval(self.source, len(keys), *keys, *args)  # type: ignore[misc]
        credential, standing, count, ttl, first_use = reply
        return Admission(int(credential), str(standing) or None, int(count), int(ttl), bool(first_use))


_access = _Script(_ACCESS)
_api_token = _Script(_API_TOKEN)


async def admit_access_token(
    redis: Redis, user_id: str, session_id: str, jti: str, window: FixedWindow, *, counts: bool
) -> Admission:
    """An access token's session and denylist, `user_id`'s standing, and (if `counts`: its
    scopes allow the method) the request counted in `window`, in one round trip."""
    keys = [denylist_key(jti), session_key(session_id), standing_key(user_id), window.key]
    return await _access(redis, keys, ["1" if counts else "0", user_id, *window.args])


async def admit_api_token(
    redis: Redis,
    token_hash: str,
    token_id: str,
    user_id: str,
    window: FixedWindow,
    *,
    counts: bool,
    read: str | None,
    cache_seconds: int,
    used_seconds: int,
) -> Admission:
    """An API token's cached record (cached now if `read`, the record just read from the
    database, and none is), its last use, `user_id`'s standing, and (if `counts`) the request
    counted in `window`, in one round trip."""
    keys = [api_token_cache_key(token_hash), api_token_used_key(token_id), standing_key(user_id), window.key]
    args = ["1" if counts else "0", REVOKED, read or "", cache_seconds, used_seconds, *window.args]
    return await _api_token(redis, keys, args)
