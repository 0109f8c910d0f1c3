"""Users on the wire: what a client may send and what it gets back (never a hash)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import PydanticCustomError

from common.security.passwords import MAX_PASSWORD_LENGTH, password_problem

USERNAME_MIN_LENGTH, USERNAME_MAX_LENGTH = 3, 32
USERNAME_RULE = (
    f"A username is {USERNAME_MIN_LENGTH} to {USERNAME_MAX_LENGTH} characters long and uses only letters "
    "(of any alphabet, e.g. 梅 or é), digits, '.', '_' and '-': no spaces or other symbols"
)
# What broke the rule, said after it.
_USERNAME_PROBLEMS = {
    "string_too_short": "this one is too short",
    "string_too_long": "this one is too long",
    "string_pattern_mismatch": "this one has a character that is not allowed",
}


def _username_rule_in_words(value: object, handler: ValidatorFunctionWrapHandler) -> str:
    """The length and pattern checks, refused with the rule in words instead of the regex."""
    try:
        return handler(value)
    except ValidationError as exc:
        kind = exc.errors()[0]["type"]
        if kind not in _USERNAME_PROBLEMS:  # e.g. not a string at all: pydantic says it well
            raise
        raise PydanticCustomError(kind, f"{USERNAME_RULE}; {_USERNAME_PROBLEMS[kind]}.") from None


Username = Annotated[
    str,
    Field(
        min_length=USERNAME_MIN_LENGTH,
        max_length=USERNAME_MAX_LENGTH,
        pattern=r"^[\w.\-]+$",
        description=f"{USERNAME_RULE}. Unique whatever its case.",
        examples=["mei_li"],
    ),
    WrapValidator(_username_rule_in_words),
]
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
DisplayName = Annotated[str, Field(min_length=1, max_length=64)]
# Never stripped, even in models that strip their other strings: a password is kept as typed.
_AsTyped = StringConstraints(strip_whitespace=False)
Password = Annotated[str, _AsTyped, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
NewPassword = Annotated[str, _AsTyped, Field(max_length=MAX_PASSWORD_LENGTH)]
Language = Literal["zh-CN", "en"]
Role = Literal["user", "admin"]


def _valid_time_zone(value: str | None) -> str | None:
    if value is not None and value not in available_timezones():
        raise ValueError("not a known IANA time zone, e.g. Asia/Shanghai")
    return value


class UserBase(BaseModel):
    username: Username
    email: Email | None = None
    display_name: DisplayName | None = None


class UserCreate(UserBase):
    """Registration. No role, no flags: the server decides those."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [{"username": "lin.mei", "password": "plum-Lantern-42", "display_name": "Lin Mei"}]
        },
    )

    password: NewPassword

    @field_validator("username")
    @classmethod
    def _fits_its_key(cls, value: str) -> str:
        # The unique key is the case-folded name, which can be longer ("ß" -> "ss").
        if len(value.casefold()) > USERNAME_MAX_LENGTH:
            raise ValueError(f"{USERNAME_RULE}; this one is too long once case-folded (ß counts as ss).")
        return value

    @field_validator("password")
    @classmethod
    def _strong(cls, value: str) -> str:
        problem = password_problem(value)
        if problem:
            raise ValueError(f"password {problem}")
        return value


class UserUpdate(BaseModel):
    """What a user may change about themselves."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"display_name": "Lin Mei", "language": "en", "time_zone": "Asia/Shanghai"}]},
    )

    email: Email | None = None
    display_name: DisplayName | None = None
    language: Language | None = None
    time_zone: Annotated[str, Field(max_length=64)] | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, value: str | None) -> str | None:
        return _valid_time_zone(value)


class PasswordChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"current_password": "plum-Lantern-42", "new_password": "teal-Harbour-77"}]},
    )

    current_password: Password
    new_password: NewPassword


class UserPublic(UserBase):
    model_config = ConfigDict(from_attributes=True)

    id: str
    role: Role
    is_active: bool
    language: Language
    time_zone: str
    created_at: datetime
    updated_at: datetime
