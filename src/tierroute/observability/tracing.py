"""OpenTelemetry traces (``pip install tierroute[otel]``): a SERVER span per request, a CLIENT span per
upstream attempt, GenAI semantic-convention attributes, OTLP/HTTP export.

This module imports opentelemetry at import time; it is imported only when ``telemetry`` turns traces on. The
tracer provider is this gateway's own (never the process-global one), and spans are parented explicitly, so
nothing here touches OpenTelemetry's global state. A client's W3C ``traceparent`` becomes the request span's
parent; each attempt's span context is sent upstream as ``traceparent`` (providers merge
``context.UPSTREAM_HEADERS``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .access_log import RequestRecord
from .context import UPSTREAM_HEADERS
from .settings import TelemetrySettings

TRACES_PATH = "/v1/traces"


def traces_url(endpoint: str) -> str:
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def _ns(perf: float, now_perf: float, now_ns: int) -> int:
    """A perf_counter reading (the router's clock) as wall-clock nanoseconds."""
    return now_ns - int((now_perf - perf) * 1e9)


def _traceparent(ctx: Any) -> str:
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


class Tracing:
    def __init__(self, settings: TelemetrySettings) -> None:
        exporter = (OTLPSpanExporter(endpoint=traces_url(settings.otlp_endpoint), timeout=settings.export_timeout_seconds)
                    if settings.otlp_endpoint else OTLPSpanExporter(timeout=settings.export_timeout_seconds))
        self.provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}),
                                       sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)))
        self.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
        self.tracer = self.provider.get_tracer("tierroute")
        self._propagator = TraceContextTextMapPropagator()

    # -- the request span (opened and closed by the gateway) -----------------------------------------
    def start_request(self, record: RequestRecord, traceparent: str | None, tracestate: str | None) -> None:
        parent = None
        if traceparent is not None:
            carrier = {"traceparent": traceparent, **({"tracestate": tracestate} if tracestate else {})}
            parent = self._propagator.extract(carrier)
        record.span = self.tracer.start_span(f"{record.method} {record.route}", context=parent, kind=SpanKind.SERVER,
                                             attributes={"http.request.method": record.method,
                                                         "http.route": record.route})

    def end_request(self, record: RequestRecord) -> None:
        span = record.span
        if span is None:
            return
        span.set_attribute("http.response.status_code", record.status)
        if record.status >= 500 or record.outcome == "error":
            span.set_attribute("error.type", record.error or str(record.status))
            span.set_status(Status(StatusCode.ERROR))
        elif record.status >= 400:
            span.set_attribute("error.type", record.error or str(record.status))
        span.end()

    # -- attempts -------------------------------------------------------------------------------------
    def start_attempt(self, record: RequestRecord, attempt: Any, operation: str) -> None:
        parent = record.span
        if not parent.is_recording():  # not sampled: pass the trace on upstream, build no span (~half the cost)
            UPSTREAM_HEADERS.set({"traceparent": _traceparent(parent.get_span_context())})
            return
        dep = attempt.deployment
        span = self.tracer.start_span(
            f"{operation} {dep.upstream}", context=trace.set_span_in_context(record.span), kind=SpanKind.CLIENT,
            attributes={"gen_ai.operation.name": operation, "gen_ai.provider.name": dep.provider,
                        "gen_ai.request.model": dep.upstream, "tierroute.deployment": dep.id,
                        "tierroute.model": attempt.model.id, "tierroute.attempt": attempt.number})
        attempt.trace = span
        UPSTREAM_HEADERS.set({"traceparent": _traceparent(span.get_span_context())})

    def finish(self, record: RequestRecord, plan: Any, attempts: Sequence[Any], operation: str) -> None:
        """The request's outcome is known: close its attempt spans and describe it on the request span."""
        now_perf, now_ns = time.perf_counter(), time.time_ns()
        for attempt in attempts:
            span = attempt.trace
            if span is None:
                continue
            attempt.trace = None
            if not span.is_recording():  # not sampled: nothing to describe or export
                span.end()
                continue
            usage = attempt.usage
            span.set_attribute("gen_ai.response.model", attempt.deployment.upstream)
            span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
            span.set_attribute("tierroute.cost_usd", attempt.cost_usd)
            err = attempt.error
            if err is not None:
                span.set_attribute("error.type", err.kind)
                if err.upstream_status is not None:
                    span.set_attribute("http.response.status_code", err.upstream_status)
                span.set_status(Status(StatusCode.ERROR, err.kind))
            span.end(end_time=_ns(attempt.ended, now_perf, now_ns) if attempt.ended else now_ns)
        span = record.span
        if span is None or not span.is_recording():
            return
        features = plan.features
        span.update_name(f"{operation} {features.requested_model}")
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation, "gen_ai.request.model": features.requested_model,
            "tierroute.request_id": plan.request_id, "tierroute.reason": plan.decision.reason,
            "tierroute.policy": plan.decision.policy, "tierroute.attempts": len(attempts),
            "tierroute.cost_usd": record.cost_usd,
            "gen_ai.usage.input_tokens": record.prompt_tokens, "gen_ai.usage.output_tokens": record.completion_tokens,
        }
        max_tokens = getattr(features, "max_tokens", None)
        if max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = max_tokens
        if attempts:
            final = attempts[-1]
            attributes.update({"gen_ai.response.model": final.model.id, "gen_ai.provider.name": final.deployment.provider,
                               "tierroute.deployment": final.deployment.id, "tierroute.attempt": final.number})
        span.set_attributes(attributes)

    def close(self) -> None:
        self.provider.shutdown()  # exports what is buffered
