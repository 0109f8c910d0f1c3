"""Account shapes more than one service takes: the log-in credentials."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Longer than any password can be is simply a wrong password (401), not a malformed login.
MAX_LOGIN_LENGTH = 1024


class Credentials(BaseModel):
    """A username and a password, as a log-in sends them."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"username": "lin.mei", "password": "plum-Lantern-42"}]}
    )

    username: Annotated[str, Field(min_length=1, max_length=254)]
    password: Annotated[
        str, StringConstraints(strip_whitespace=False), Field(min_length=1, max_length=MAX_LOGIN_LENGTH)
    ]
