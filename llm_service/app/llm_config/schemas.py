"""Provider settings as the API shows and takes them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

from common.api_clients.llm import PRESETS

LOCAL = "local"
CUSTOM = "custom"
PROVIDER_NAMES = (LOCAL, *PRESETS)  # local, openai, deepseek, qwen, ollama, custom

Scope = Literal["user", "instance"]
# Where the settings that apply come from: the caller's own, the instance's (an admin's),
# the environment (`JILU_LLM_*`), or the built-in offline provider.
Source = Literal["user", "instance", "environment", "default"]

_Text = Annotated[str, StringConstraints(strip_whitespace=True)]


class LlmConfigBase(BaseModel):
    provider: str
    base_url: str
    model: str


class LlmConfigUpdate(BaseModel):
    """What `PUT /api/v1/llm/config` (and `POST /api/v1/llm/test`) take.

    A preset's name fills in its base URL and model unless given; `custom` needs both.
    `api_key` left out keeps the stored key (for the same host only); `""` removes it.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"provider": "local"}]})

    provider: Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=32)]
    base_url: Annotated[_Text, Field(max_length=500)] | None = None
    model: Annotated[_Text, Field(max_length=200)] | None = None
    api_key: Annotated[SecretStr, Field(max_length=500)] | None = None

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PROVIDER_NAMES:
            raise ValueError(f"unknown provider; choose one of {', '.join(PROVIDER_NAMES)}")
        return value

    @field_validator("api_key")
    @classmethod
    def _printable_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        key = value.get_secret_value().strip()
        # It travels in an HTTP header: printable ASCII, no spaces (the key itself is never echoed).
        if not all(33 <= ord(ch) <= 126 for ch in key):
            raise ValueError("the API key may contain only printable ASCII characters without spaces")
        return SecretStr(key)


class LlmConfigPublic(LlmConfigBase):
    """The settings that apply; the key itself is never shown, only whether one is set."""

    api_key_set: bool
    scope: Scope = Field(description="The scope asked about")
    source: Source = Field(description="Where these settings come from")


class LlmTestResult(BaseModel):
    """The outcome of a tiny chat call: latency when it worked, the error's class when not
    (never the provider's own answer)."""

    ok: bool
    provider: str
    model: str
    latency_ms: int | None = None
    error_class: str | None = None
    detail: str | None = Field(default=None, description="Jilu's description of the failure")


class ProviderPresetPublic(BaseModel):
    name: str
    label: str
    base_url: str
    model: str
    supports_json_mode: bool
    supports_embeddings: bool
    embedding_model: str | None
    needs_api_key: bool
    needs_allowed_host: bool


class BudgetCount(BaseModel):
    used: int = Field(description="spent today (UTC)")
    limit: int | None = Field(description="the daily budget; null when that budget is off")


class LlmUsage(BaseModel):
    """`GET /api/v1/llm/usage`: the caller's remote-provider spending today against the budgets."""

    requests: BudgetCount
    tokens: BudgetCount
    resets_at: datetime = Field(description="the next UTC midnight, when both counts start again at 0")
