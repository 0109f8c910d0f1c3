"""Token requests and answers."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.users.schemas import Credentials
from user_service.app.users.schemas import UserPublic


class LoginRequest(Credentials):
    """Log-in credentials, as JSON or as the fields of the OAuth2 password form."""


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
