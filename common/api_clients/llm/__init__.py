"""LLM providers over the OpenAI-compatible wire format: the client, its errors, circuit
breakers, the SSRF guard for configurable base URLs and provider presets. Reading what a
model wrote is llm_service's business (`llm_service.app.analysis.parsing`)."""

from common.api_clients.llm.breaker import BreakerRegistry, CircuitBreaker, breakers
from common.api_clients.llm.client import OpenAICompatibleClient, create_llm_http_client
from common.api_clients.llm.errors import (
    ERROR_CLASSES,
    CircuitOpen,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimited,
    ProviderRefusedAddress,
    ProviderServerError,
    ProviderTimeout,
    ProviderTooLarge,
    ProviderUnauthorized,
)
from common.api_clients.llm.presets import PRESETS, ProviderPreset, get_preset, list_presets
from common.api_clients.llm.results import ChatCompletion, ChatMessage, StreamDelta, TokenUsage
from common.api_clients.llm.ssrf import GuardedTransport, UnsafeBaseURL, check_base_url, ensure_allowed

__all__ = [
    "ERROR_CLASSES",
    "PRESETS",
    "BreakerRegistry",
    "ChatCompletion",
    "ChatMessage",
    "CircuitBreaker",
    "CircuitOpen",
    "GuardedTransport",
    "OpenAICompatibleClient",
    "ProviderBadRequest",
    "ProviderBadResponse",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderPreset",
    "ProviderRateLimited",
    "ProviderRefusedAddress",
    "ProviderServerError",
    "ProviderTimeout",
    "ProviderTooLarge",
    "ProviderUnauthorized",
    "StreamDelta",
    "TokenUsage",
    "UnsafeBaseURL",
    "breakers",
    "check_base_url",
    "create_llm_http_client",
    "ensure_allowed",
    "get_preset",
    "list_presets",
]
