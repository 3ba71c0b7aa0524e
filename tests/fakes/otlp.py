"""A local OTLP/HTTP trace receiver: a real HTTP server on 127.0.0.1 that accepts `POST /v1/traces` as a collector
does (protobuf, or JSON; gzip or deflate bodies) and keeps the spans it decodes, flattened for assertions.

    with OTLPReceiver() as otlp:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp.url  # the SDK appends /v1/traces
        ...
        spans = otlp.wait_for(lambda spans: any(s.name == "job resolve_issue" for s in spans))
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS = {0: "unset", 1: "ok", 2: "error"}


@dataclass
class Span:
    trace_id: str  # hex
    span_id: str
    parent_id: str  # "" for a root
    name: str
    kind: str
    start: int  # ns since the epoch
    end: int
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    status: str
    status_message: str
    resource: dict[str, Any]
    scope: str

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / 1e9


@dataclass
class Export:
    path: str
    content_type: str
    spans: list[Span] = field(default_factory=list)


class OTLPReceiver:
    def __init__(self) -> None:
        self.exports: list[Export] = []
        self.rejected: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> OTLPReceiver:
        receiver = self

        class Handler(_Handler):
            owner = receiver

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-otlp",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the receiver first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def spans(self) -> list[Span]:
        with self._lock:
            return [span for export in self.exports for span in export.spans]

    def trace(self, trace_id: str) -> list[Span]:
        return [span for span in self.spans if span.trace_id == trace_id]

    def wait_for(self, predicate: Callable[[list[Span]], Any], timeout: float = 20.0) -> list[Span]:
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted({span.name for span in spans})
                raise AssertionError(f"the spans wanted did not arrive within {timeout} s; got {len(spans)}: {names}")
            time.sleep(0.05)

    def receive(self, path: str, content_type: str, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        if content_type.startswith("application/json"):
            json_format.Parse(body.decode(), request)
        else:
            request.ParseFromString(body)
        export = Export(path, content_type, _flatten(request))
        with self._lock:
            self.exports.append(export)


class _Handler(BaseHTTPRequestHandler):
    owner: OTLPReceiver
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        encoding = (self.headers.get("content-encoding") or "").lower()
        content_type = (self.headers.get("content-type") or "application/x-protobuf").lower()
        if self.path.split("?")[0] != "/v1/traces":
            self._answer(404, b"not found", "text/plain")
            return
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            self.owner.receive(self.path, content_type, body)
        except Exception as exc:  # a body no collector would take: 400, as one would answer
            self.owner.rejected.append(f"{type(exc).__name__}: {exc}")
            self._answer(400, str(exc).encode(), "text/plain")
            return
        if content_type.startswith("application/json"):
            self._answer(200, json_format.MessageToJson(ExportTraceServiceResponse()).encode(), "application/json")
        else:
            self._answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _flatten(request: ExportTraceServiceRequest) -> list[Span]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(Span(
                    trace_id=span.trace_id.hex(), span_id=span.span_id.hex(), parent_id=span.parent_span_id.hex(),
                    name=span.name, kind=KINDS.get(span.kind, str(span.kind)), start=span.start_time_unix_nano,
                    end=span.end_time_unix_nano, attributes=_attributes(span.attributes),
                    events=[{"name": e.name, "time": e.time_unix_nano, "attributes": _attributes(e.attributes)}
                            for e in span.events],
                    status=STATUS.get(span.status.code, str(span.status.code)), status_message=span.status.message,
                    resource=resource, scope=scope_spans.scope.name))
    return spans


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, which) if which else None
