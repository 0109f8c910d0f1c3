"""Which provider serves a user.

Precedence: the user's own setting (`PUT /api/v1/llm/config`), else the instance's (an
admin's), else the environment's default (`JILU_LLM_PROVIDER`, `JILU_LLM_BASE_URL`,
`JILU_LLM_API_KEY`, `JILU_LLM_MODEL`), else the offline provider `local`. A name other
than `local` is an OpenAI-compatible endpoint, the preset of that name (openai, deepseek,
qwen, ollama) filling in what the setting leaves empty.

The settings are read from the database on every lookup (one small indexed query), so a
change takes effect at once on every replica; the providers built from them are kept for
a short while, keyed by the row and its `updated_at`, so nothing is rebuilt per call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.ai.models import LlmConfig
from common.api_clients.llm import OpenAICompatibleClient, ProviderBadRequest, get_preset
from common.api_clients.llm.presets import vision_model_for
from common.config import JiluSettings
from llm_service.app.llm_config import repository
from llm_service.app.llm_config.crypto import KeyCipher, UnreadableKey
from llm_service.app.providers.base import Provider
from llm_service.app.providers.local import LocalProvider
from llm_service.app.providers.remote import RemoteProvider

logger = logging.getLogger("jilu.providers")

LOCAL = "local"
CACHE_SECONDS = 30.0

# A built provider is reused while its row is unchanged: same id, same updated_at, same values.
CacheKey = tuple[str, datetime, str, str, str, str | None]


def build_remote(
    http: httpx.AsyncClient,
    settings: JiluSettings,
    name: str,
    base_url: str,
    model: str,
    api_key: str | None,
) -> RemoteProvider:
    """A RemoteProvider for `name` (a preset's name or `custom`); the preset fills in an
    empty base URL or model, and says whether it transcribes and sees images (a model whose
    name says it sees images, e.g. Ollama's llava, sees them whatever the preset)."""
    preset = get_preset(name)
    base_url = base_url or (preset.base_url if preset else "")
    model = model or (preset.model if preset else "")
    if not base_url or not model:
        raise ValueError(f"the LLM provider {name!r} needs a base URL and a model")
    client = OpenAICompatibleClient(
        http,
        base_url,
        api_key,
        model,
        allowed_hosts=settings.llm_allowed_hosts,
        embedding_model=preset.embedding_model if preset else None,
    )
    return RemoteProvider(
        client,
        name=name,
        supports_json_mode=bool(preset and preset.supports_json_mode),
        transcription_model=preset.transcription_model if preset and preset.supports_transcription else None,
        vision_model=vision_model_for(preset, model),
    )


def remote_from_settings(settings: JiluSettings, http: httpx.AsyncClient) -> RemoteProvider:
    try:
        return build_remote(
            http,
            settings,
            settings.llm_provider.strip().lower(),
            settings.llm_base_url,
            settings.llm_model,
            settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        )
    except ValueError:
        raise ValueError(
            f"JILU_LLM_PROVIDER={settings.llm_provider!r} needs JILU_LLM_BASE_URL and JILU_LLM_MODEL "
            "(or the name of a preset: openai, deepseek, qwen, ollama)"
        ) from None


class ProviderRegistry:
    """Resolves and builds the provider of each user; one per llm_service process."""

    def __init__(
        self,
        settings: JiluSettings,
        http: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.http = http
        self.cipher = KeyCipher(settings.secret)
        self.local = LocalProvider()
        # The environment's default: what users get when neither they nor an admin chose.
        self.default: Provider = (
            self.local if settings.llm_provider.strip().lower() == LOCAL else remote_from_settings(settings, http)
        )
        self._sessionmaker = sessionmaker
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._built: dict[CacheKey, tuple[float, Provider]] = {}

    async def for_user(self, user_id: str, session: AsyncSession | None = None) -> Provider:
        """The provider that serves `user_id`: their own, the instance's, the environment's,
        `local`. Read in `session` when one is given (a request already reading), else in a
        session of its own."""
        if session is not None:
            own, instance = await repository.configs_for(session, user_id)
        else:
            async with self._sessionmaker() as own_session:
                own, instance = await repository.configs_for(own_session, user_id)
        row = own or instance
        return self.default if row is None else self.from_config(row)

    def from_config(self, row: LlmConfig) -> Provider:
        if row.provider == LOCAL:
            return self.local
        key: CacheKey = (row.id, row.updated_at, row.provider, row.base_url, row.model, row.api_key_encrypted)
        now = self._clock()
        cached = self._built.get(key)
        if cached is not None and cached[0] > now:
            self._built[key] = (now + self._cache_seconds, cached[1])
            return cached[1]
        provider = self._build(row)
        self._forget_expired(now)
        self._built[key] = (now + self._cache_seconds, provider)
        return provider

    def _build(self, row: LlmConfig) -> Provider:
        api_key = None
        if row.api_key_encrypted:
            try:
                api_key = self.cipher.decrypt(row.api_key_encrypted)
            except UnreadableKey:
                logger.warning("the API key of LLM config %s cannot be decrypted; calling without it", row.id)
        try:
            return build_remote(self.http, self.settings, row.provider, row.base_url, row.model, api_key)
        except ValueError:
            raise ProviderBadRequest("The configured LLM provider has no base URL or model") from None

    def _forget_expired(self, now: float) -> None:
        for key in [key for key, (expires, _) in self._built.items() if expires <= now]:
            del self._built[key]
