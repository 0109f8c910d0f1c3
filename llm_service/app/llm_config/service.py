"""Provider settings: what applies to whom, saving them safely, and testing them.

Precedence, for a user: their own setting, else the instance's (set by an admin), else the
environment's (`JILU_LLM_*`), else the built-in offline provider `local`. Keys are stored
encrypted (`crypto.KeyCipher`), never returned and never logged; a stored key is only ever
sent to the host it was given for. Base URLs pass the SSRF guard before anything is stored.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import httpx
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.ai.models import LlmConfig
from common.api_clients.llm import (
    PRESETS,
    CircuitBreaker,
    OpenAICompatibleClient,
    ProviderError,
    check_base_url,
    get_preset,
)
from common.config import JiluSettings
from common.errors import Forbidden, Unprocessable
from common.security import AuthUser
from llm_service.app.llm_config import repository
from llm_service.app.llm_config.crypto import KeyCipher, UnreadableKey
from llm_service.app.llm_config.schemas import (
    CUSTOM,
    LOCAL,
    LlmConfigPublic,
    LlmConfigUpdate,
    LlmTestResult,
    Scope,
    Source,
)

logger = logging.getLogger("jilu.llm_config")

TEST_PROMPT = [{"role": "user", "content": "ping"}]
TEST_MAX_TOKENS = 5
TEST_TIMEOUT = 15.0  # seconds: a test answers quickly or reports a timeout


@dataclass(frozen=True)
class Applied:
    """Settings as they apply, with the key in plain text only when it was asked for."""

    provider: str
    base_url: str
    model: str
    source: Source
    api_key_set: bool = False
    api_key: str | None = field(default=None, repr=False)

    def public(self, scope: Scope) -> LlmConfigPublic:
        return LlmConfigPublic(
            provider=self.provider,
            base_url=self.base_url,
            model=self.model,
            api_key_set=self.api_key_set,
            scope=scope,
            source=self.source,
        )


DEFAULT = Applied(provider=LOCAL, base_url="", model="", source="default")


def owner_for(user: AuthUser, scope: Scope) -> str | None:
    """Whose row a write of `scope` touches: the caller's, or the instance's (admins only)."""
    if scope == "instance":
        if not user.is_admin:
            raise Forbidden("only administrators may change the instance's provider")
        return None
    return user.id


def host_of(url: str) -> str:
    """`scheme://host:port` of a URL (for logs and for binding a stored key to its host)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return ""
    if not parsed.host:
        return ""
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme, 0)
    return f"{parsed.scheme}://{parsed.host}:{port}".lower()


def _decrypt(cipher: KeyCipher | None, row: LlmConfig) -> str | None:
    if cipher is None or not row.api_key_encrypted:
        return None
    try:
        return cipher.decrypt(row.api_key_encrypted)
    except UnreadableKey:
        logger.warning("the API key of LLM config %s cannot be decrypted; calling without it", row.id)
        return None


def from_row(row: LlmConfig, source: Source, cipher: KeyCipher | None = None) -> Applied:
    return Applied(
        provider=row.provider,
        base_url=row.base_url,
        model=row.model,
        source=source,
        api_key_set=bool(row.api_key_encrypted),
        api_key=_decrypt(cipher, row),
    )


def from_environment(settings: JiluSettings) -> Applied:
    """The environment's default (`JILU_LLM_*`), presets filling what it leaves empty."""
    name = settings.llm_provider.strip().lower()
    if name == LOCAL:
        return DEFAULT
    preset = get_preset(name)
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return Applied(
        provider=name,
        base_url=settings.llm_base_url or (preset.base_url if preset else ""),
        model=settings.llm_model or (preset.model if preset else ""),
        source="environment",
        api_key_set=bool(key),
        api_key=key or None,
    )


async def applied_settings(
    session: AsyncSession,
    settings: JiluSettings,
    user_id: str,
    scope: Scope = "user",
    cipher: KeyCipher | None = None,
) -> Applied:
    """What applies to `user_id` (scope `user`) or to users without their own (`instance`).
    The key is decrypted only when `cipher` is given."""
    own, instance = await repository.configs_for(session, user_id)
    if scope == "user" and own is not None:
        return from_row(own, "user", cipher)
    if instance is not None:
        return from_row(instance, "instance", cipher)
    return from_environment(settings)


async def read_config(session: AsyncSession, settings: JiluSettings, user: AuthUser, scope: Scope) -> LlmConfigPublic:
    return (await applied_settings(session, settings, user.id, scope)).public(scope)


@dataclass(frozen=True)
class Target:
    """An update resolved against its preset and checked: where calls would go."""

    provider: str
    base_url: str
    model: str


async def resolve_target(update: LlmConfigUpdate, settings: JiluSettings) -> Target:
    """Fill in the preset's defaults and check the base URL (SSRF guard: 422 naming
    `base_url`). Resolves DNS, so call it before opening a write transaction."""
    if update.provider == LOCAL:
        return Target(LOCAL, "", "")
    preset = PRESETS[update.provider]
    base_url = update.base_url or preset.base_url
    model = update.model or preset.model
    if not base_url:
        raise Unprocessable("base_url", f"the {CUSTOM} provider needs a base URL")
    if not model:
        raise Unprocessable("model", f"the {CUSTOM} provider needs a model")
    base_url = await check_base_url(base_url, settings.llm_allowed_hosts)
    return Target(update.provider, base_url, model)


def stored_key_applies(target: Target, stored: LlmConfig | None) -> bool:
    """Whether the stored key may go with `target`: a key is only ever sent to the host it
    was given for (a changed base URL must not carry it elsewhere)."""
    if stored is None or not stored.api_key_encrypted or target.provider == LOCAL:
        return False
    return bool(host_of(stored.base_url)) and host_of(stored.base_url) == host_of(target.base_url)


async def save_config(
    session: AsyncSession,
    settings: JiluSettings,
    cipher: KeyCipher,
    user: AuthUser,
    scope: Scope,
    update: LlmConfigUpdate,
) -> LlmConfigPublic:
    """Store the caller's own settings or (admins) the instance's."""
    owner_id = owner_for(user, scope)
    target = await resolve_target(update, settings)
    stored = await repository.get_config(session, owner_id)
    encrypted: str | None = None
    if update.api_key is not None:
        key = update.api_key.get_secret_value()
        encrypted = cipher.encrypt(key) if key and target.provider != LOCAL else None
    elif stored_key_applies(target, stored):
        assert stored is not None
        encrypted = stored.api_key_encrypted
    elif stored is not None and stored.api_key_encrypted and target.provider != LOCAL:
        raise Unprocessable(
            "api_key",
            'the stored API key was given for another host; send it again for this base URL (or "" for none)',
        )
    values = {
        "provider": target.provider,
        "base_url": target.base_url,
        "model": target.model,
        "api_key_encrypted": encrypted,
    }
    row = await _upsert(session, owner_id, stored, values)
    logger.info(
        "LLM provider of %s set to %s %s",
        "the instance" if owner_id is None else f"user {owner_id}",
        target.provider,
        host_of(target.base_url) or "(offline)",
    )
    source: Source = "user" if owner_id is not None else "instance"
    return from_row(row, source).public(scope)


async def _upsert(
    session: AsyncSession, owner_id: str | None, stored: LlmConfig | None, values: dict[str, str | None]
) -> LlmConfig:
    if stored is None:
        try:
            async with session.begin_nested():
                row = LlmConfig(owner_id=owner_id, **values)
                session.add(row)
                await session.flush()
            return row
        except IntegrityError:  # a concurrent first save of the same user's settings won
            stored = await repository.get_config(session, owner_id)
            if stored is None:
                raise
    for name, value in values.items():
        setattr(stored, name, value)
    await session.flush()
    return stored


async def settings_to_test(
    session: AsyncSession,
    settings: JiluSettings,
    cipher: KeyCipher,
    user: AuthUser,
    scope: Scope,
    update: LlmConfigUpdate | None,
    target: Target | None,
) -> Applied:
    """What `POST /llm/test` calls: the given settings (a stored key only for its own host)
    or, without a body, what applies to the caller."""
    if update is None or target is None:
        return await applied_settings(session, settings, user.id, scope, cipher)
    stored = await repository.get_config(session, owner_for(user, scope))
    if update.api_key is not None:
        key: str | None = update.api_key.get_secret_value()
    elif stored_key_applies(target, stored):
        assert stored is not None
        key = _decrypt(cipher, stored)
    else:
        key = None
    return Applied(target.provider, target.base_url, target.model, "user", bool(key), key or None)


async def run_test(http: httpx.AsyncClient, settings: JiluSettings, applied: Applied) -> LlmTestResult:
    """One tiny chat call ("ping", 5 tokens), no retries, its own circuit breaker (a test
    must neither be refused by nor trip the breaker real calls use)."""
    if applied.provider == LOCAL:
        return LlmTestResult(ok=True, provider=LOCAL, model="", latency_ms=0)
    client = OpenAICompatibleClient(
        http,
        applied.base_url,
        applied.api_key,
        applied.model,
        breaker=CircuitBreaker(),
        max_retries=0,
        read_timeout=TEST_TIMEOUT,
        total_timeout=TEST_TIMEOUT,
        allowed_hosts=settings.llm_allowed_hosts,
    )
    started = time.perf_counter()
    try:
        await client.chat(TEST_PROMPT, max_tokens=TEST_MAX_TOKENS)
    except ProviderError as exc:
        logger.info("LLM provider test of %s failed: %s", host_of(applied.base_url), exc.error_class)
        return LlmTestResult(
            ok=False,
            provider=applied.provider,
            model=applied.model,
            error_class=exc.error_class,
            detail=str(exc.detail),
        )
    latency_ms = max(0, round((time.perf_counter() - started) * 1000))
    return LlmTestResult(ok=True, provider=applied.provider, model=applied.model, latency_ms=latency_ms)
