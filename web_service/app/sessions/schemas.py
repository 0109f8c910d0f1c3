"""Browser sessions on the wire: the login form and the access token handed to the page."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from common.security.passwords import MAX_PASSWORD_LENGTH


class SessionLogin(BaseModel):
    """Username and password, as JSON (user_service's own endpoint takes the OAuth2 form)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"username": "lin.mei", "password": "plum-Lantern-42"}]}
    )

    username: Annotated[str, Field(min_length=1, max_length=254)]
    password: Annotated[
        str, StringConstraints(strip_whitespace=False), Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    ]


class SessionToken(BaseModel):
    """The access token only: its refresh token travels in the `jilu_refresh` cookie."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the access token expires")
