"""Token requests and answers."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from user_service.app.users.schemas import UserPublic

MAX_LOGIN_LENGTH = 1024


class LoginRequest(BaseModel):
    """Log-in credentials, as JSON or as the fields of the OAuth2 password form."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"username": "lin.mei", "password": "plum-Lantern-42"}]}
    )

    username: Annotated[str, Field(min_length=1, max_length=254)]
    # Longer than any password can be is simply a wrong password (401), not a malformed login.
    password: Annotated[
        str, StringConstraints(strip_whitespace=False), Field(min_length=1, max_length=MAX_LOGIN_LENGTH)
    ]


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the access token expires")


class RefreshRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.…"}]}
    )

    refresh_token: Annotated[str, Field(min_length=1, max_length=4096)]


class RegisteredSession(BaseModel):
    """`POST /register?login=true`: the new account and a session opened for it."""

    user: UserPublic
    tokens: TokenPair
