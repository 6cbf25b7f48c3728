"""An OTLP/HTTP trace receiver on loopback: ``POST /v1/traces`` protobuf, decoded with opentelemetry-proto."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .loopback import serve_in_thread


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind is not None else None


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    status_code: int
    attributes: dict[str, Any]
    service: str
    start_ns: int
    end_ns: int


@dataclass
class OTLPReceiver:
    spans: list[Span] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    url: str = ""

    def start(self) -> OTLPReceiver:
        def build() -> web.Application:
            app = web.Application()
            app.router.add_post("/v1/traces", self._traces)
            return app

        self.url = serve_in_thread(build, "otlp-receiver")
        return self

    async def _traces(self, request: web.Request) -> web.Response:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.content_types.append(request.headers.get("content-type", ""))
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource_spans in message.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    self.spans.append(Span(
                        name=s.name, trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(), kind=s.kind, status_code=s.status.code,
                        attributes={a.key: _value(a.value) for a in s.attributes},
                        service=resource.get("service.name", ""), start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano))
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")
