"""Personal API tokens: `jilu_pat_` + 256 random bits, stored as a sha256 hash."""

from __future__ import annotations

import hashlib
import secrets

from common.cache import cache_key

API_TOKEN_PREFIX = "jilu_pat_"
SCOPES = ("read", "write")
CACHE_TTL = 60
REVOKED = "revoked"  # cached in place of a deleted token for CACHE_TTL


def generate_api_token() -> tuple[str, str, str]:
    """A new token, its hash (what is stored) and its display prefix."""
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_api_token(token), token[: len(API_TOKEN_PREFIX) + 4]


def hash_api_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_cache_key(token_hash: str) -> str:
    return cache_key("pat", token_hash)


def api_token_used_key(token_id: str) -> str:
    return cache_key("pat", token_id, "used")
