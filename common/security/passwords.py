"""Password hashing (argon2id through pwdlib) and the password rules."""

from __future__ import annotations

import secrets

from anyio import to_thread
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128

_hasher = PasswordHash((Argon2Hasher(),))
# Verified against when a username does not exist, so both cases take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

# The most common passwords of leaked lists that pass the length rule.
COMMON_PASSWORDS = frozenset(
    {
        "password",
        "password1",
        "password123",
        "12345678",
        "123456789",
        "1234567890",
        "qwertyui",
        "qwerty123",
        "iloveyou",
        "11111111",
        "00000000",
        "88888888",
        "abcd1234",
        "abc12345",
        "1qaz2wsx",
        "aa123456",
        "a1234567",
        "passw0rd",
        "welcome1",
        "sunshine",
        "princess",
        "football",
        "baseball",
        "superman",
        "woaini1314",
        "5201314520",
        "qwertyuiop",
        "asdfghjkl",
        "zxcvbnm123",
        "changeme",
        "letmein1",
        "admin123",
        "administrator",
    }
)


def password_problem(password: str, username: str | None = None) -> str | None:
    """Why `password` is too weak, or None. Lengths are checked in full: nothing is truncated."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must be at most {MAX_PASSWORD_LENGTH} characters"
    if len(set(password)) < 4:
        return "must use more than three different characters"
    if password.casefold() in COMMON_PASSWORDS:
        return "is one of the most common passwords"
    if username and username.casefold() in password.casefold():
        return "must not contain the username"
    return None


def hash_password_sync(password: str) -> str:
    return _hasher.hash(password)


async def hash_password(password: str) -> str:
    """argon2id hash (`$argon2id$...`), computed off the event loop."""
    return await to_thread.run_sync(_hasher.hash, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Check `password`; with no hash (unknown user) a dummy check keeps the timing equal."""
    target = password_hash or _DUMMY_HASH
    ok = await to_thread.run_sync(_hasher.verify, password, target)
    return ok and password_hash is not None
