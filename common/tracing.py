"""OpenTelemetry tracing, off unless `JILU_OTEL_ENDPOINT` names an OTLP/HTTP receiver.

When it is on, each service process gets a tracer provider (`service.name` = the service)
that batches spans to `<endpoint>/v1/traces`. FastAPI makes a server span per request
(named by the route template) once a provider is set; the internal HTTP client
(`common.api_clients.http`, `traced=True`) makes a client span per call to another service
and sends its W3C `traceparent`, so one browser request is one trace across web → llm.

The client-facing services (web, mobile) do not take a trace context from the outside: a
browser cannot choose trace ids or force sampling; the internal ones (user, llm) join the
trace of the service that called them. When tracing is off the SDK's tracer and the exporter
are never imported, and nothing but FastAPI's own check of the (unset) global provider runs
per request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import common

if TYPE_CHECKING:
    from common.config import JiluSettings

logger = logging.getLogger("jilu.tracing")

PUBLIC_SERVICES = frozenset({"web_service", "mobile_service"})
# Requests that are not worth a trace: health checks and scrapes, every few seconds.
UNTRACED_PATHS = frozenset({"/health", "/health/ready", "/metrics"})
TRACES_PATH = "/v1/traces"

_propagator = TraceContextTextMapPropagator()
_provider: Any = None  # this process's SDK TracerProvider, once `setup_tracing` made one


def enabled() -> bool:
    return _provider is not None


def traces_url(endpoint: str) -> str:
    """`http://collector:4318` → `http://collector:4318/v1/traces`; a URL that already ends
    in `/v1/traces` stays as it is."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def setup_tracing(service: str, settings: JiluSettings) -> None:
    """Make this process's tracer provider when `settings.otel_endpoint` is set (once per
    process: a second app in the same process, as in tests, shares the first's)."""
    global _provider
    if not settings.otel_endpoint or _provider is not None:
        return
    from opentelemetry import propagate
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    resource = Resource.create(
        {"service.name": service, "service.namespace": "jilu", "service.version": common.__version__}
    )
    provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.otel_sample_ratio)))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(settings.otel_endpoint))))
    trace.set_tracer_provider(provider)
    # What FastAPI reads from incoming requests (outgoing calls inject with `_propagator`).
    propagate.set_global_textmap(_IgnoreIncoming() if service in PUBLIC_SERVICES else _propagator)
    _provider = provider
    logger.info("tracing on: spans go to %s", traces_url(settings.otel_endpoint))


def flush() -> None:
    """Send the spans still batched (at a service's shutdown)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)


def excluded(scope: Any) -> bool:
    """FastAPI's `telemetry.exclude`: no span for health checks and scrapes."""
    return scope.get("path") in UNTRACED_PATHS


@contextmanager
def span(name: str, attributes: dict[str, Any]) -> Iterator[Any]:
    """A span named `name` under the current one while tracing is on and a request is being
    traced (the span, to add attributes to); else nothing (None). The span is not made the
    current one: this may wrap an async generator, whose steps can run in other contexts."""
    if _provider is None or not trace.get_current_span().get_span_context().is_valid:
        yield None
        return
    current = trace.get_tracer("jilu").start_span(name, attributes=attributes)
    try:
        yield current
    except Exception:
        current.set_status(trace.StatusCode.ERROR)
        raise
    finally:
        current.end()


def tag_request(request_id: str) -> None:
    """Put the request id on the current server span (logs carry it too: one finds the other)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("jilu.request_id", request_id)


class _IgnoreIncoming(TextMapPropagator):
    """A public port's propagator: every request starts a trace of its own."""

    def extract(self, carrier: Any, context: Context | None = None, getter: Any = None) -> Context:
        return context if context is not None else Context()

    def inject(self, carrier: Any, context: Context | None = None, setter: Any = None) -> None:
        return None

    @property
    def fields(self) -> set[str]:
        return set()


class TracingTransport(httpx.AsyncBaseTransport):
    """An httpx transport that makes a client span for each call made inside a traced request
    and sends its `traceparent`. Calls outside one (readiness checks, workers) pass untouched."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.tracer = trace.get_tracer("jilu.http")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not trace.get_current_span().get_span_context().is_valid:
            return await self.inner.handle_async_request(request)
        attributes: dict[str, Any] = {
            "http.request.method": request.method,
            "server.address": request.url.host,
            "server.port": request.url.port or (443 if request.url.scheme == "https" else 80),
            "url.full": str(request.url.copy_with(query=None)),
        }
        with self.tracer.start_as_current_span(
            request.method, kind=trace.SpanKind.CLIENT, attributes=attributes
        ) as span:
            _propagator.inject(request.headers)
            response = await self.inner.handle_async_request(request)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(trace.StatusCode.ERROR)
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()
