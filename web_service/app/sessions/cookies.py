"""The refresh cookie: `jilu_refresh`, HttpOnly (no script reads it), SameSite=Strict (no
other site's page sends it), on `/api/v1/auth` only, Secure when the page came over https."""

from __future__ import annotations

import re

REFRESH_COOKIE = "jilu_refresh"
COOKIE_PATH = "/api/v1/auth"
# What a JWT is made of; anything else is refused rather than written into a header.
_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9._\-]{1,4096}$")


def _cookie(value: str, max_age: int, *, secure: bool) -> str:
    attributes = [
        f"{REFRESH_COOKIE}={value}",
        "HttpOnly",
        "SameSite=Strict",
        f"Path={COOKIE_PATH}",
        f"Max-Age={max_age}",
    ]
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)


def is_cookie_safe(value: str) -> bool:
    return bool(_COOKIE_VALUE.match(value))


def refresh_cookie(refresh_token: str, max_age: int, *, secure: bool) -> str:
    """The `Set-Cookie` value that stores `refresh_token` for `max_age` seconds."""
    if not is_cookie_safe(refresh_token):
        raise ValueError("a refresh token is a JWT")
    return _cookie(refresh_token, max_age, secure=secure)


def cleared_cookie(*, secure: bool) -> str:
    """The `Set-Cookie` value that deletes the cookie (same name, path and flags, Max-Age=0)."""
    return _cookie("", 0, secure=secure)
