"""Known OpenAI-compatible providers: where they answer, a sensible model, what they support.

`GET /api/v1/llm/presets` lists these; a preset only fills in defaults, every field can be
overridden, and `custom` takes any base URL (checked by the SSRF guard like all others).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

# Model names that say the model sees images: llava and its kin, `*-vl-*` / `qwen2.5vl`,
# `llama3.2-vision`, moondream, minicpm-v. Other names are taken to be text-only.
_VISION_MODEL_NAME = re.compile(r"llava|vision|moondream|minicpm-v|(?:^|[-_.:/\d])vl(?:$|[-_.:])", re.I)


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
    supports_transcription: bool = False  # answers `POST /audio/transcriptions`
    transcription_model: str | None = None
    # Has a model that reads images (`image_url` content parts): `vision_model`, or the
    # configured model when its name says it sees images (see `vision_model_for`).
    supports_vision: bool = False
    vision_model: str | None = None

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
            supports_transcription=True,
            transcription_model="gpt-4o-mini-transcribe",
            supports_vision=True,
            vision_model="gpt-4o-mini",
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
            # Compatible mode has no /audio/transcriptions; its VL models take image_url parts.
            supports_vision=True,
            vision_model="qwen-vl-plus",
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
            # Sees images only when the configured model does (llava, qwen2.5vl, llama3.2-vision).
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


def vision_model_for(preset: ProviderPreset | None, model: str) -> str | None:
    """The model that describes images for a provider configured with `model`: that model
    when its name says it sees images (llava, qwen-vl, llama3.2-vision…), else the preset's
    vision model, else None (the provider does not see images)."""
    if model and _VISION_MODEL_NAME.search(model):
        return model
    if preset is not None and preset.supports_vision:
        return preset.vision_model or model or None
    return None


def list_presets() -> list[dict[str, Any]]:
    """Every preset as plain data, in a stable order (for the presets endpoint)."""
    return [preset.as_dict() for preset in PRESETS.values()]
