"""Browser sessions on the wire: the login form and the access token handed to the page."""

from typing import Literal

from pydantic import BaseModel, Field

from common.users.schemas import Credentials


class SessionLogin(Credentials):
    """Username and password, as JSON; the web port logs in with them on user_service."""


class SessionToken(BaseModel):
    """The access token only: its refresh token travels in the `jilu_refresh` cookie."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the access token expires")
