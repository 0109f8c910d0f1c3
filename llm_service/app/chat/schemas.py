"""What chat's routes take and give: conversations and chat messages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from common.pagination import Page
from common.wire_types import StrictFlag

MAX_TITLE = 200
MAX_QUESTION = 4000

Title = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_TITLE)]


class ConversationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"title": "What did I do in March?", "ephemeral": False}]}
    )

    title: Title | None = Field(default=None, description="left empty, the first question names it")
    ephemeral: StrictFlag = Field(
        default=False, description="kept only in Redis, gone after `JILU_CHAT_TTL` seconds without use"
    )


class ConversationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"title": "March, remembered"}]})

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE)]


class ConversationPublic(BaseModel):
    id: str
    title: str
    ephemeral: bool
    created_at: datetime
    updated_at: datetime


class MessageCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"content": "When did I last walk by the river?", "stream": False}]},
    )

    content: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUESTION)]
    stream: StrictFlag = Field(default=False, description="answer as Server-Sent Events (`delta`, `done`, `error`)")


class ChatMessagePublic(BaseModel):
    id: str
    role: Literal["user", "assistant"]
    content: str
    citations: list[str] = Field(description="ids of the caller's records the answer drew on")
    created_at: datetime


class ConversationDetail(ConversationPublic):
    messages: Page[ChatMessagePublic] = Field(description="newest first; `?limit&cursor` page through them")
