"""Prometheus metrics: what every service counts, and `GET /metrics`, which answers only to the
addresses in `JILU_METRICS_ALLOW` (docs/observability.md).

Each service is one process (one uvicorn worker), so the metrics live in prometheus-client's
default registry, with its `process_*` and `python_*` metrics. Counters and histograms are
updated where things happen (requests in `common.middleware.RequestIdMiddleware`, jobs in
`common.queue.workers`, provider calls in `common.api_clients.llm.client`, budget refusals in
llm_service's budgets); gauges of things that exist elsewhere (queue depths in Redis, the
database pools) are read when `/metrics` is scraped.

Labels stay bounded: a request is labelled by its route's template (`/api/v1/records/{record_id}`,
never the raw path), `unmatched` when no route took it, and its method is one of the HTTP
methods or `OTHER`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from time import perf_counter
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.types import Scope

from common import tracing
from common.config import JiluSettings
from common.security.client_address import client_address, from_trusted_proxy

if TYPE_CHECKING:
    from common.api_clients.llm.results import TokenUsage
    from common.queue.stream import DurableQueue

logger = logging.getLogger("jilu.metrics")

# Latency buckets (seconds) for requests and provider calls: a list read takes milliseconds,
# a streamed chat answer tens of seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
UNMATCHED_ROUTE = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# How long a scrape waits for Redis (queue depths) before answering with what it has.
COLLECT_TIMEOUT = 2.0
# Who may read /metrics when JILU_METRICS_ALLOW is unset, outside production (in production
# nobody: an operator names the scraper's network).
DEVELOPMENT_METRICS_ALLOW = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
)
# Headers a proxy adds: a request carrying one came through a proxy, and only a trusted one
# (JILU_TRUSTED_PROXIES) is believed about whom it relays.
_PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")

HTTP_REQUESTS = Counter(
    "jilu_http_requests",
    "HTTP requests answered, by route template and status",
    ["service", "method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "jilu_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response (a stream: to its last event)",
    ["service", "method", "route"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_JOBS = Gauge(
    "jilu_queue_jobs",
    "Jobs in a durable queue: waiting (unread), pending (read, not finished), retrying (failed at least once)",
    ["queue", "state"],
)
QUEUE_OUTCOMES = Counter(
    "jilu_queue_jobs_processed",
    "Attempts at queued jobs by outcome: done, later (asked to look again), failed (will be retried), given_up",
    ["queue", "outcome"],
)
QUEUE_DURATION = Histogram(
    "jilu_queue_job_duration_seconds", "Time one attempt at a queued job took", ["queue"], buckets=LATENCY_BUCKETS
)
PROVIDER_REQUESTS = Counter(
    "jilu_llm_provider_requests",
    "Calls to remote LLM providers by operation and outcome (ok, or the error class)",
    ["operation", "outcome"],
)
PROVIDER_DURATION = Histogram(
    "jilu_llm_provider_request_duration_seconds",
    "Time a remote provider call took, retries included (a stream: to its end)",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
PROVIDER_TOKENS = Counter(
    "jilu_llm_provider_tokens", "Tokens remote providers reported, by operation and kind", ["operation", "kind"]
)
BUDGET_REFUSALS = Counter(
    "jilu_llm_budget_refusals", "Remote LLM calls refused because a user's daily budget was used up", ["budget"]
)
DB_POOL = Gauge(
    "jilu_db_pool_connections",
    "Database pool connections: size (kept open), checked_out (in use), overflow (beyond size), checked_in (idle)",
    ["service", "engine", "state"],
)
COLLECT_ERRORS = Counter(
    "jilu_metrics_collect_errors", "Scrapes that could not read a gauge's source (e.g. Redis away)", ["source"]
)


# -- requests ------------------------------------------------------------------------------


def route_template(scope: Scope) -> str:
    """The template of the route that took the request (`/api/v1/records/{record_id}`), a
    mounted app's `<mount path>/{path}` (the web port's Flask pages: `/{path}`), or `unmatched`."""
    route = scope.get("route")
    if route is None:
        # A mount sets no route, only the app it hands the request to, and its own path.
        return f"{scope.get('root_path', '').rstrip('/')}/{{path}}" if "endpoint" in scope else UNMATCHED_ROUTE
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED_ROUTE


class RequestMetrics:
    """One service's request counter and latency histogram. The label children are kept by
    (method, route, status), so a request costs a dict lookup, an increment and an observe.
    A route (or a mount's app) is keyed by its identity: routes are not hashable, and live
    as long as the app."""

    __slots__ = ("_children", "service")

    def __init__(self, service: str) -> None:
        self.service = service
        self._children: dict[tuple[str, int, int], tuple[Any, Any]] = {}

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"]
        if method not in KNOWN_METHODS:
            method = "OTHER"
        key = (method, id(scope.get("route") or scope.get("endpoint")), status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._make(method, route_template(scope), status)
        children[0].inc()
        children[1].observe(seconds)

    def _make(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        return (
            HTTP_REQUESTS.labels(self.service, method, route, str(status)),
            HTTP_DURATION.labels(self.service, method, route),
        )


# -- jobs, providers, budgets --------------------------------------------------------------


def job_attempt(queue: str, outcome: str, seconds: float) -> None:
    QUEUE_OUTCOMES.labels(queue, outcome).inc()
    QUEUE_DURATION.labels(queue).observe(seconds)


@contextmanager
def provider_call(operation: str) -> Iterator[None]:
    """Time one provider call and count its outcome: `ok`, the `ProviderError`'s error class,
    or `cancelled` (the caller went away, e.g. a chat client closed the stream). A span of
    its own in the request's trace when tracing is on."""
    started = perf_counter()
    outcome = "ok"
    with tracing.span(f"llm provider {operation}", {"jilu.llm.operation": operation}) as span:
        try:
            yield
        except BaseException as exc:
            outcome = getattr(exc, "error_class", None) or (
                "cancelled" if isinstance(exc, asyncio.CancelledError | GeneratorExit) else "internal_error"
            )
            raise
        finally:
            PROVIDER_REQUESTS.labels(operation, outcome).inc()
            PROVIDER_DURATION.labels(operation).observe(perf_counter() - started)
            if span is not None:
                span.set_attribute("jilu.llm.outcome", outcome)


def provider_tokens(operation: str, usage: TokenUsage | None) -> None:
    if usage is None:
        return
    if usage.prompt_tokens:
        PROVIDER_TOKENS.labels(operation, "prompt").inc(usage.prompt_tokens)
    if usage.completion_tokens:
        PROVIDER_TOKENS.labels(operation, "completion").inc(usage.completion_tokens)


def budget_refused(budget: str) -> None:
    BUDGET_REFUSALS.labels(budget).inc()


# -- gauges read at scrape time ------------------------------------------------------------


def record_pool(service: str, name: str, engine: AsyncEngine) -> None:
    """The pool of `engine` (`read` or `write`) now."""
    pool: Any = engine.pool
    for state, reader in (("size", "size"), ("checked_out", "checkedout"), ("overflow", "overflow")):
        value = getattr(pool, reader, None)
        if callable(value):
            DB_POOL.labels(service, name, state).set(max(0, int(value())))
    checked_in = getattr(pool, "checkedin", None)
    if callable(checked_in):
        DB_POOL.labels(service, name, "checked_in").set(int(checked_in()))


async def record_queue(queue: DurableQueue) -> None:
    """The depth of `queue` now, read from Redis (bounded by `COLLECT_TIMEOUT`)."""
    try:
        status = await asyncio.wait_for(queue.status(), COLLECT_TIMEOUT)
    except Exception:  # noqa: BLE001 - Redis away: the scrape answers with what it has
        COLLECT_ERRORS.labels(f"queue:{queue.group}").inc()
        return
    QUEUE_JOBS.labels(queue.group, "waiting").set(status.waiting)
    QUEUE_JOBS.labels(queue.group, "pending").set(status.pending)
    QUEUE_JOBS.labels(queue.group, "retrying").set(status.retrying)


# -- who may read /metrics -----------------------------------------------------------------


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(allowed: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in allowed)


def metrics_allow(settings: JiluSettings) -> tuple[str, ...]:
    """The networks that may read /metrics: `JILU_METRICS_ALLOW`, else loopback and the
    private networks outside production and nobody in production."""
    if settings.metrics_allow is not None:
        return tuple(settings.metrics_allow)
    return () if settings.is_production else DEVELOPMENT_METRICS_ALLOW


def metrics_allowed(request: Request, settings: JiluSettings) -> bool:
    """Whether `request` may read /metrics: its client is in `metrics_allow`. The client is
    the socket peer; a request that came through a proxy (it carries X-Forwarded-For,
    Forwarded or X-Real-IP) counts only from a trusted proxy, and then as the client that
    proxy names: a public client's request relayed by a same-host proxy never reads as
    loopback, and a header a client made up is never believed."""
    networks = _networks(metrics_allow(settings))
    if not networks:
        return False
    headers = request.headers
    if any(name in headers for name in _PROXY_HEADERS) and not from_trusted_proxy(request, settings):
        return False
    try:
        address = ipaddress.ip_address(client_address(request, settings))
    except ValueError:
        return False
    return any(address in network for network in networks)


def exposition() -> tuple[bytes, str]:
    """The text format of every metric now, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
