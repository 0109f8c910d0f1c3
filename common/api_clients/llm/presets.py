"""Known OpenAI-compatible providers: where they answer, a sensible model, what they support.

`GET /api/v1/llm/presets` lists these; a preset only fills in defaults, every field can be
overridden, and `custom` takes any base URL (checked by the SSRF guard like all others).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ProviderPreset:
    name: str
    label: str
    base_url: str
    model: str
    supports_json_mode: bool  # accepts `response_format: {"type": "json_object"}`
    supports_embeddings: bool  # answers `POST /embeddings`
    embedding_model: str | None = None
    needs_api_key: bool = True
    # The default base URL is loopback: an admin must list it in JILU_LLM_ALLOWED_HOSTS.
    needs_allowed_host: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, ProviderPreset] = {
    preset.name: preset
    for preset in (
        ProviderPreset(
            name="openai",
            label="OpenAI",
            base_url="https://api.openai.com/v1",
            model="gpt-4o-mini",
            supports_json_mode=True,
            supports_embeddings=True,
            embedding_model="text-embedding-3-small",
        ),
        ProviderPreset(
            name="deepseek",
            label="DeepSeek",
            base_url="https://api.deepseek.com/v1",
            model="deepseek-chat",
            supports_json_mode=False,
            supports_embeddings=False,
        ),
        ProviderPreset(
            name="qwen",
            label="Qwen (DashScope compatible mode)",
            base_url="https://dashscope.aliyuncs.com/compatible-mode/v1",
            model="qwen-plus",
            supports_json_mode=True,
            supports_embeddings=True,
            embedding_model="text-embedding-v3",
        ),
        ProviderPreset(
            name="ollama",
            label="Ollama (local)",
            base_url="http://127.0.0.1:11434/v1",
            model="qwen2.5:7b",
            # JSON mode depends on the model; the output is parsed defensively instead.
            supports_json_mode=False,
            supports_embeddings=True,
            embedding_model="nomic-embed-text",
            needs_api_key=False,
            needs_allowed_host=True,
        ),
        ProviderPreset(
            name="custom",
            label="Any OpenAI-compatible endpoint",
            base_url="",
            model="",
            supports_json_mode=False,
            supports_embeddings=False,
        ),
    )
}


def get_preset(name: str) -> ProviderPreset | None:
    return PRESETS.get(name.strip().lower())


def list_presets() -> list[dict[str, Any]]:
    """Every preset as plain data, in a stable order (for the presets endpoint)."""
    return [preset.as_dict() for preset in PRESETS.values()]
