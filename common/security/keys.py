"""Keys derived from the instance secret, one per purpose, so no two uses share a key."""

from __future__ import annotations

import functools
import hashlib
import hmac


@functools.lru_cache(maxsize=64)  # a handful of purposes; a list signs one URL per file
def derive_key(secret: str, purpose: str) -> bytes:
    return hmac.new(secret.encode(), f"jilu:{purpose}".encode(), hashlib.sha256).digest()


def sign(secret: str, purpose: str, message: str) -> str:
    return hmac.new(derive_key(secret, purpose), message.encode(), hashlib.sha256).hexdigest()


def verify_signature(secret: str, purpose: str, message: str, signature: str) -> bool:
    """Whether `signature` is `sign(secret, purpose, message)`, in constant time. Compared as
    bytes: `hmac.compare_digest` raises `TypeError` on a `str` with non-ASCII characters, and
    a presented signature is whatever a client sent."""
    expected = sign(secret, purpose, message).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "surrogatepass"))
