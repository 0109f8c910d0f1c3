"""JWT access and refresh tokens (PyJWT, HS256 pinned).

Access and refresh tokens are told apart by `typ` and by mutually exclusive claims: an access
token carries `sid` and `scope` and never `fam`; a refresh token carries `fam` and never `sid`
or `scope`. `decode` checks both, so one can never pass for the other.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt

from common.security.keys import derive_key

ALGORITHM = "HS256"
ISSUER = "jilu"
AUDIENCE = "jilu-api"
TokenType = Literal["access", "refresh"]
REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "jti", "typ"]
VERIFIED_KEPT = 4096  # access tokens remembered as verified, per codec


class InvalidToken(Exception):
    pass


class ExpiredToken(InvalidToken):
    """A genuine token past its `exp`."""


@dataclass(frozen=True)
class TokenClaims:
    sub: str
    jti: str
    typ: TokenType
    sid: str  # the session (refresh family) the token belongs to
    exp: datetime
    iat: datetime
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class IssuedToken:
    token: str
    claims: TokenClaims


class TokenCodec:
    def __init__(self, secret: str, access_minutes: int, refresh_days: int) -> None:
        self._key = derive_key(secret, "jwt")
        self._successor_key = derive_key(secret, "refresh-successor")
        self.access_lifetime = timedelta(minutes=access_minutes)
        self.refresh_lifetime = timedelta(days=refresh_days)
        # Access tokens this codec has verified, by their text, with their claims and `exp`. A
        # client presents the same token on every request for its lifetime, and verifying it
        # again could only give the same answer, but for `exp`: the signature and the other
        # claims do not change with time (`iat` and `nbf` only get further behind), so only
        # `exp` is checked again on each use. Oldest first out; a new secret is a new codec.
        self._verified_access: dict[str, tuple[TokenClaims, int]] = {}

    def issue(
        self,
        typ: TokenType,
        user_id: str,
        session_id: str,
        scopes: tuple[str, ...] = (),
        *,
        jti: str | None = None,
        issued_at: datetime | None = None,
    ) -> IssuedToken:
        """A signed token. Given the same `jti` and `issued_at` (whole seconds), the same
        claims give the same bytes: HS256 is deterministic, which lets a refresh be replayed."""
        now = (issued_at or datetime.now(UTC)).replace(microsecond=0)
        lifetime = self.access_lifetime if typ == "access" else self.refresh_lifetime
        claims = TokenClaims(
            sub=user_id,
            jti=jti or uuid.uuid4().hex,
            typ=typ,
            sid=session_id,
            exp=now + lifetime,
            iat=now,
            scopes=scopes,
        )
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id,
            "exp": claims.exp,
            "iat": now,
            "jti": claims.jti,
            "typ": typ,
        }
        if typ == "access":
            payload.update(sid=session_id, scope=" ".join(scopes))
        else:
            payload.update(fam=session_id)
        return IssuedToken(jwt.encode(payload, self._key, algorithm=ALGORITHM), claims)

    def successor_jtis(self, refresh_jti: str) -> tuple[str, str]:
        """The ids (access, refresh) of the pair that replaces the refresh token `refresh_jti`:
        derived, not random, so a retried refresh can be answered with the very same pair
        without any token being stored. Unguessable without the instance secret."""
        digest = hmac.new(self._successor_key, refresh_jti.encode(), hashlib.sha256).hexdigest()
        return digest[:32], digest[32:]

    def decode(self, token: str, expected: TokenType) -> TokenClaims:
        """Verify signature, algorithm, issuer, audience, expiry and the token's kind.
        `ExpiredToken` only for a token that would otherwise pass (of the kind expected)."""
        if expected == "access" and (verified := self._verified_access.get(token)) is not None:
            claims, expires = verified
            if expires <= time.time():  # as PyJWT decides it (`exp <= now`)
                raise ExpiredToken("token expired")
            return claims
        try:
            try:
                payload, expired = self._verified(token, verify_exp=True), False
            except jwt.ExpiredSignatureError:
                payload, expired = self._verified(token, verify_exp=False), True
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from exc
        claims = self._claims(payload, expected)
        if expired:
            raise ExpiredToken("token expired")
        if expected == "access":
            if len(self._verified_access) >= VERIFIED_KEPT:
                del self._verified_access[next(iter(self._verified_access))]
            self._verified_access[token] = (claims, int(payload["exp"]))
        return claims

    def _verified(self, token: str, *, verify_exp: bool) -> dict[str, Any]:
        return jwt.decode(
            token,
            self._key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": REQUIRED_CLAIMS, "verify_exp": verify_exp},
        )

    @staticmethod
    def _claims(payload: dict[str, Any], expected: TokenType) -> TokenClaims:
        if payload.get("typ") != expected:
            raise InvalidToken("wrong token type")
        if expected == "access":
            if "fam" in payload or not isinstance(payload.get("sid"), str) or "scope" not in payload:
                raise InvalidToken("malformed access token")
            session_id, scopes = payload["sid"], tuple(str(payload["scope"]).split())
        else:
            if "sid" in payload or "scope" in payload or not isinstance(payload.get("fam"), str):
                raise InvalidToken("malformed refresh token")
            session_id, scopes = payload["fam"], ()
        return TokenClaims(
            sub=str(payload["sub"]),
            jti=str(payload["jti"]),
            typ=expected,
            sid=session_id,
            exp=datetime.fromtimestamp(payload["exp"], UTC),
            iat=datetime.fromtimestamp(payload["iat"], UTC),
            scopes=scopes,
        )
