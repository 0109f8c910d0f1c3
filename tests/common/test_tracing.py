"""OpenTelemetry tracing (common/tracing.py) in parts: off by default without even importing
the SDK's tracer or the exporter, its settings, and the internal client's trace context. The whole of it, one trace
across web → llm, is tests/e2e/test_tracing.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from common import tracing
from common.config import JiluSettings
from tests.harness import ROOT, clean_env

OFF_CHECK = """
import sys
from common import tracing
from llm_service.app.main import create_app as llm
from mobile_service.app.main import create_app as mobile
from user_service.app.main import create_app as user
from web_service.app.main import create_app as web
for create_app in (web, user, mobile, llm):
    create_app()
from opentelemetry import trace
assert not tracing.enabled()
assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
# (redis-py imports the SDK's metrics part itself when it is installed; never its traces.)
sdk = sorted(name for name in sys.modules if name.startswith(("opentelemetry.sdk.trace", "opentelemetry.exporter")))
assert not sdk, sdk
print("off")
"""


def test_tracing_is_off_by_default_and_neither_tracer_nor_exporter_imported(tmp_path: Any) -> None:
    env = clean_env(JILU_DATA_DIR=str(tmp_path), JILU_SECRET_KEY="t" * 40)
    done = subprocess.run(
        [sys.executable, "-c", OFF_CHECK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("off")


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://otel.example/v1/traces", "https://otel.example/v1/traces"),
    ],
)
def test_the_traces_url_of_an_endpoint(endpoint: str, url: str) -> None:
    assert tracing.traces_url(endpoint) == url


@pytest.mark.parametrize(
    "setting", [{"otel_endpoint": "collector:4318"}, {"otel_endpoint": "ftp://c/"}, {"otel_sample_ratio": 1.5}]
)
def test_bad_tracing_settings_are_refused(make_settings: Callable[..., Any], setting: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make_settings(JiluSettings, **setting)


async def test_the_internal_client_sends_the_trace_context_only_inside_a_trace() -> None:
    seen: list[httpx.Headers] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(204)

    transport = tracing.TracingTransport(httpx.MockTransport(answer))
    tracer = TracerProvider().get_tracer("test")  # a provider of the test's own, not the global one
    async with httpx.AsyncClient(transport=transport, base_url="http://llm.internal") as client:
        await client.get("/api/v1/chat/conversations")  # a worker's call: no trace to join
        with tracer.start_as_current_span("request") as span:
            await client.get("/api/v1/chat/conversations")
            trace_id = format(span.get_span_context().trace_id, "032x")

    assert "traceparent" not in seen[0]
    version, sent_trace, _parent, _flags = seen[1]["traceparent"].split("-")
    assert (version, sent_trace) == ("00", trace_id)
