"""`/api/v1/llm/*`: provider settings, presets, a test call and the caller's budget usage
(forwarded here by web and mobile)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from common.api_clients.llm import list_presets
from common.errors import Forbidden, ServiceUnavailable, Unauthorized, Unprocessable, error_responses
from llm_service.app.deps import BudgetsDep, CurrentUser, ProvidersDep, SessionDep, SessionmakerDep, SettingsDep
from llm_service.app.llm_config import service
from llm_service.app.llm_config.schemas import (
    BudgetCount,
    LlmConfigPublic,
    LlmConfigUpdate,
    LlmTestResult,
    LlmUsage,
    ProviderPresetPublic,
    Scope,
)

router = APIRouter(prefix="/api/v1/llm", tags=["llm"], responses=error_responses(Unauthorized))


ScopeQuery = Annotated[Scope, Query(description="`user`: the caller's own; `instance`: the instance's (admins write)")]


@router.get("/config", response_model=LlmConfigPublic)
async def get_config(
    user: CurrentUser, session: SessionDep, settings: SettingsDep, scope: ScopeQuery = "user"
) -> LlmConfigPublic:
    """The provider settings that apply: with `scope=user` the caller's own, else the
    instance's, else the environment's, else the offline provider `local`; with
    `scope=instance` what applies to users without their own. `source` says which. The API
    key is never shown, only `api_key_set`."""
    return await service.read_config(session, settings, user, scope)


@router.put("/config", response_model=LlmConfigPublic, responses=error_responses(Forbidden, Unprocessable))
async def put_config(
    update: LlmConfigUpdate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    providers: ProvidersDep,
    scope: ScopeQuery = "user",
) -> LlmConfigPublic:
    """Set the caller's own provider (`scope=user`, used only by them) or, for admins, the
    instance's (`scope=instance`). A preset's name fills in its base URL and model; `custom`
    needs both. The base URL must be http(s) and public unless its `host:port` is in
    `JILU_LLM_ALLOWED_HOSTS` (422 naming `base_url`). `api_key` left out keeps the stored
    key while the base URL stays on the same host; `""` removes it. Takes effect within
    seconds on every replica."""
    return await service.save_config(session, settings, providers.cipher, user, scope, update)


@router.get("/presets", response_model=list[ProviderPresetPublic])
async def get_presets(user: CurrentUser) -> list[dict[str, object]]:
    """The known providers (OpenAI, DeepSeek, Qwen, Ollama) and `custom`, with their default
    base URL and model and what they support."""
    return list_presets()


@router.post("/test", response_model=LlmTestResult, responses=error_responses(Forbidden, Unprocessable))
async def test_config(
    user: CurrentUser,
    sessions: SessionmakerDep,
    settings: SettingsDep,
    providers: ProvidersDep,
    update: Annotated[LlmConfigUpdate | None, Body()] = None,
    scope: ScopeQuery = "user",
) -> LlmTestResult:
    """A tiny chat call ("ping", at most 5 tokens) to the given settings (a body like PUT's,
    to try before saving) or to the ones that apply to the caller. Answers `ok` with the
    latency, or `ok: false` with the error's class; never the provider's own answer."""
    service.owner_for(user, scope)  # the instance's settings: admins only
    target = await service.resolve_target(update, settings) if update is not None else None
    # A short read, closed before the call: no transaction stays open while the provider answers.
    async with sessions() as session:
        applied = await service.settings_to_test(session, settings, providers.cipher, user, scope, update, target)
    return await service.run_test(providers.http, settings, applied)


@router.get("/usage", response_model=LlmUsage, responses=error_responses(ServiceUnavailable))
async def get_usage(user: CurrentUser, budgets: BudgetsDep) -> LlmUsage:
    """What the caller has spent today (UTC) on remote providers: `requests` and `tokens`,
    each `{used, limit}` (`limit` null when that budget is off, `JILU_LLM_DAILY_*=0`), and
    `resets_at`, the next UTC midnight. The offline provider `local` is free and never
    counted. Past a limit, remote calls answer 429 `budget_exceeded` until `resets_at`."""
    usage = await budgets.usage(user.id)
    return LlmUsage(
        requests=BudgetCount(used=usage.requests, limit=usage.request_limit),
        tokens=BudgetCount(used=usage.tokens, limit=usage.token_limit),
        resets_at=usage.resets_at,
    )
