"""What can go wrong when talking to an LLM provider, as `JiluError`s with an `error_class`.

Every message here is written by Jilu: never the provider's body (it may echo the prompt or
the API key) and never the key. Timeouts answer 504, everything else 502. The `error_class`
is the short machine word a user sees for a failed analysis or a provider test.
"""

from __future__ import annotations

from typing import Any

from common.errors import UpstreamError, UpstreamTimeout

# Outcomes that say the provider itself is unwell; they count against its circuit breaker.
BREAKER_FAILURES = frozenset({"timeout", "connection", "server_error", "rate_limited", "bad_response", "too_large"})


class ProviderError(UpstreamError):
    """An LLM provider failed (502). `retryable` tells the client's retry loop whether another
    attempt may help; `retry_after` is the provider's own wish, in seconds, when it gave one."""

    code = "llm_provider_error"
    default_detail = "The LLM provider failed"
    error_class = "server_error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        upstream_status: int | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail, **extra)
        self.retryable = retryable
        self.retry_after = retry_after
        self.upstream_status = upstream_status

    @property
    def counts_against_breaker(self) -> bool:
        return self.error_class in BREAKER_FAILURES

    def __repr__(self) -> str:
        return f"{type(self).__name__}(error_class={self.error_class!r}, detail={self.detail!r})"


class ProviderTimeout(ProviderError, UpstreamTimeout):
    """The provider did not connect or answer in time (504)."""

    status_code, code, default_detail = 504, "llm_provider_timeout", "The LLM provider did not answer in time"
    error_class = "timeout"


class ProviderRateLimited(ProviderError):
    error_class, default_detail = "rate_limited", "The LLM provider is rate limiting requests"


class ProviderServerError(ProviderError):
    error_class, default_detail = "server_error", "The LLM provider had an internal error"


class ProviderBadResponse(ProviderError):
    error_class, default_detail = "bad_response", "The LLM provider's answer was not usable"


class ProviderTooLarge(ProviderError):
    error_class, default_detail = "too_large", "The LLM provider's answer was too large"


class ProviderUnauthorized(ProviderError):
    error_class, default_detail = "unauthorized", "The LLM provider refused the API key"


class ProviderBadRequest(ProviderError):
    """The provider rejected the request itself (a 4xx other than 401/403/429): an unknown
    model, a context too long, a base URL without a chat endpoint."""

    error_class, default_detail = "bad_request", "The LLM provider rejected the request"


class CircuitOpen(ProviderError):
    error_class, default_detail = "circuit_open", "The LLM provider is failing; calls are paused for a while"


class ProviderConnectionError(ProviderError):
    error_class, default_detail = "connection", "The LLM provider could not be reached"


class ProviderRefusedAddress(ProviderError):
    """The provider's host resolved to an address Jilu may not call (SSRF guard)."""

    error_class, default_detail = "refused_address", "The LLM provider's address is not allowed"


ERROR_CLASSES: dict[str, type[ProviderError]] = {
    cls.error_class: cls
    for cls in (
        ProviderTimeout,
        ProviderRateLimited,
        ProviderServerError,
        ProviderBadResponse,
        ProviderTooLarge,
        ProviderUnauthorized,
        ProviderBadRequest,
        CircuitOpen,
        ProviderConnectionError,
        ProviderRefusedAddress,
    )
}
