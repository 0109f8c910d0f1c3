"""OpenTelemetry tracing end to end: the real launcher with `JILU_OTEL_ENDPOINT` pointing at a
small OTLP/HTTP receiver in this test (spans decoded with opentelemetry-proto's classes). One
browser request on the web port that web_service relays to llm_service is one trace: web's
server span, its client span, and llm's server span below it, parent to child."""

from __future__ import annotations

import gzip
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.e2e.stack import e2e_stack

pytestmark = pytest.mark.e2e

PASSWORD = "plum-Lantern-42"
SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
WAIT_SECONDS = 60.0  # a bound on waiting for the batches, not a timing assertion


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


class Receiver:
    """An OTLP/HTTP traces endpoint on a free loopback port: every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.take(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="otlp-receiver", daemon=True)

    def take(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        attributes = {a.key: _value(a.value) for a in span.attributes}
                        self.spans.append(
                            ReceivedSpan(
                                service=resource.get("service.name", ""),
                                name=span.name,
                                kind=span.kind,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_id=span.parent_span_id.hex(),
                                attributes=attributes,
                            )
                        )

    def received(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.spans)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def server_span(spans: list[ReceivedSpan], service: str, request_id: str) -> ReceivedSpan | None:
    found = [
        s
        for s in spans
        if s.service == service and s.kind == SERVER and s.attributes.get("jilu.request_id") == request_id
    ]
    return found[0] if found else None


def test_one_browser_request_is_one_trace_from_web_to_llm(tmp_path: Path, receiver: Receiver) -> None:
    with (
        e2e_stack(
            tmp_path,
            JILU_SERVICES="web,user,llm",  # what the request goes through
            JILU_OTEL_ENDPOINT=receiver.url,
            OTEL_BSP_SCHEDULE_DELAY="100",  # milliseconds between the exporter's batches
        ) as jilu,
        # As the web app's page in a browser: same origin.
        httpx.Client(base_url=jilu.url("web"), headers={"Origin": jilu.url("web")}, timeout=30.0) as web,
    ):
        username = f"tracer_{uuid.uuid4().hex[:8]}"
        assert web.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD}).status_code == 201
        session = web.post("/api/v1/auth/session", json={"username": username, "password": PASSWORD})
        assert session.status_code == 200, session.text
        request_id = f"trace-{uuid.uuid4().hex}"
        # The browser's own trace context is not believed on a public port.
        browser_trace = uuid.uuid4().hex
        headers = {
            "Authorization": f"Bearer {session.json()['access_token']}",
            "X-Request-ID": request_id,
            "traceparent": f"00-{browser_trace}-{uuid.uuid4().hex[:16]}-01",
        }
        created = web.post("/api/v1/chat/conversations", headers=headers, json={"title": "Traced"})
        assert created.status_code == 201, created.text

        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            spans = receiver.received()
            if server_span(spans, "web_service", request_id) and server_span(spans, "llm_service", request_id):
                break
            time.sleep(0.1)

    spans = receiver.received()
    web_server = server_span(spans, "web_service", request_id)
    llm_server = server_span(spans, "llm_service", request_id)
    assert web_server is not None and llm_server is not None, sorted({(s.service, s.name) for s in spans})
    trace = web_server.trace_id
    assert trace != browser_trace and web_server.parent_id == ""  # a root: the browser's context was dropped
    assert llm_server.trace_id == trace
    # Every span this request made, on both services, is in that one trace.
    tagged = [s for s in spans if s.attributes.get("jilu.request_id") == request_id]
    assert {s.trace_id for s in tagged} == {trace}
    assert llm_server.attributes.get("http.route") == "/api/v1/chat/conversations"
    # Parent to child: llm's server span under web's client span, which is under web's server span.
    by_id = {s.span_id: s for s in spans if s.trace_id == trace}
    parent = by_id[llm_server.parent_id]
    assert (parent.service, parent.kind) == ("web_service", CLIENT)
    chain = [parent]
    while chain[-1].parent_id:
        chain.append(by_id[chain[-1].parent_id])
    assert chain[-1] == web_server
    assert all(s.service == "web_service" for s in chain)
