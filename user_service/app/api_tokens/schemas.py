"""Personal API tokens: created once with the secret shown, listed without it."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Scope = Literal["read", "write"]


class ApiTokenCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"name": "backup script", "scopes": ["read"], "expires_in_days": 90}]},
    )

    name: Annotated[str, Field(min_length=1, max_length=64)]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=2)] = ["read", "write"]
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] | None = Field(
        default=None, description="days until the token stops working; omit for no expiry"
    )


class ApiTokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    token_prefix: str
    scopes: list[Scope]
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class ApiTokenCreated(BaseModel):
    """The only answer that carries the token itself."""

    id: str
    name: str
    token: str
    scopes: list[Scope]
    expires_at: datetime | None
