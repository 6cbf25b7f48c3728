"""OpenTelemetry traces over real HTTP, exported over OTLP/HTTP to a receiver on loopback."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
pytest.importorskip("opentelemetry.proto")

from ..fakes.otlp_receiver import OTLPReceiver  # noqa: E402
from . import wire  # noqa: E402

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SERVER, CLIENT = 2, 3  # SpanKind in OTLP's protobuf
STATUS_ERROR = 2


@pytest.fixture
def receiver() -> OTLPReceiver:
    return OTLPReceiver().start()


def test_spans_per_request_and_attempt_with_genai_attributes_and_propagated_context(gateway_factory, fake_upstream,
                                                                                     receiver):
    gw = gateway_factory(telemetry={"otlp_endpoint": receiver.url, "service_name": "gw-under-test"})
    r = wire.post(f"{gw.url}/v1/chat/completions",
                  json={"model": "mid", "max_tokens": 64, "messages": [{"role": "user", "content": "secret prompt"}]},
                  headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
    assert r.status_code == 200
    gw.stop()  # shutting down flushes the exporter
    request = next(s for s in receiver.spans if s.kind == SERVER)
    attempt = next(s for s in receiver.spans if s.kind == CLIENT)
    assert receiver.content_types[0] == "application/x-protobuf"
    assert request.service == "gw-under-test"
    # the client's trace continues: its span is the request span's parent
    assert request.trace_id == attempt.trace_id == CLIENT_TRACE
    assert request.parent_span_id == CLIENT_SPAN
    assert attempt.parent_span_id == request.span_id
    # ...and reaches the upstream, as the attempt span's context
    assert fake_upstream.headers[-1]["traceparent"] == f"00-{CLIENT_TRACE}-{attempt.span_id}-01"
    assert request.name == "chat mid"
    a = request.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "mid"
    assert a["gen_ai.response.model"] == "mid" and a["gen_ai.provider.name"] == "fake"
    assert a["gen_ai.request.max_tokens"] == 64
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (11, 5)
    assert a["tierroute.reason"] == "requested" and a["tierroute.attempts"] == 1
    assert a["tierroute.request_id"] == r.headers["x-tierroute-request-id"]
    assert a["tierroute.cost_usd"] == pytest.approx(float(r.headers["x-tierroute-cost-usd"]))
    assert a["http.response.status_code"] == 200 and a["http.route"] == "/v1/chat/completions"
    b = attempt.attributes
    assert attempt.name == "chat fake-mid"
    assert b["gen_ai.request.model"] == "fake-mid" and b["gen_ai.provider.name"] == "fake"
    assert b["tierroute.deployment"] == r.headers["x-tierroute-deployment"] and b["tierroute.attempt"] == 1
    assert (b["gen_ai.usage.input_tokens"], b["gen_ai.usage.output_tokens"]) == (11, 5)
    assert request.start_ns <= attempt.start_ns <= attempt.end_ns <= request.end_ns
    assert not any("secret prompt" in str(v) for s in receiver.spans for v in s.attributes.values())


def test_failed_attempts_are_error_spans_and_a_new_trace_starts_without_traceparent(gateway_factory, fake_upstream,
                                                                                   receiver):
    gw = gateway_factory(telemetry={"otlp_endpoint": f"{receiver.url}/v1/traces"},
                         reliability={"retry": {"retries": 0}, "fallbacks": {"small": ["mid"]}})
    fake_upstream.behaviour.status = 500
    r = wire.post(f"{gw.url}/v1/chat/completions", json={"model": "small", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code >= 500
    fake_upstream.behaviour.status = 200
    stream = wire.post(f"{gw.url}/v1/chat/completions",
                       json={"model": "small", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert stream.status_code == 200
    gw.stop()
    requests = [s for s in receiver.spans if s.kind == SERVER]
    assert len(requests) == 2
    failed = next(s for s in requests if s.status_code == STATUS_ERROR)
    assert failed.parent_span_id == ""  # no traceparent from the client: a new trace
    assert failed.attributes["error.type"] == "all_attempts_failed"
    attempts = sorted((s for s in receiver.spans if s.parent_span_id == failed.span_id), key=lambda s: s.start_ns)
    assert [(s.attributes["tierroute.attempt"], s.attributes["tierroute.deployment"], s.attributes["error.type"],
             s.attributes["http.response.status_code"], s.status_code) for s in attempts] == [
        (1, "fake/fake-small", "unavailable", 500, STATUS_ERROR), (2, "fake/fake-mid", "unavailable", 500, STATUS_ERROR)]
    streamed = next(s for s in requests if s is not failed)
    [streamed_attempt] = [s for s in receiver.spans if s.parent_span_id == streamed.span_id]
    assert streamed_attempt.attributes["gen_ai.usage.output_tokens"] > 0
    assert streamed.attributes["gen_ai.response.model"] == "small"


def test_without_telemetry_opentelemetry_is_never_imported(tmp_path):
    code = """
import sys
from tierroute.config import parse_settings
from tierroute.router import Router
from tierroute.server import create_app
settings = parse_settings({"ledger": {"backend": "none"}, "server": {"access_log": "json"}})
create_app(Router(settings))
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_traces_true_exports_where_the_standard_otel_variables_say(gateway_factory, receiver, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    gw = gateway_factory(telemetry={"traces": True})
    assert wire.post(f"{gw.url}/v1/chat/completions",
                     json={"model": "big", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    gw.stop()
    assert {s.kind for s in receiver.spans} == {SERVER, CLIENT}
    assert {s.service for s in receiver.spans} == {"tierroute"}


def test_sampling_keeps_the_clients_decision_and_the_ratio(gateway_factory, fake_upstream, receiver):
    gw = gateway_factory(telemetry={"otlp_endpoint": receiver.url, "sample_ratio": 0})
    sampled = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    for traceparent in (None, sampled):
        headers = {"traceparent": traceparent} if traceparent else {}
        assert wire.post(f"{gw.url}/v1/chat/completions", headers=headers,
                         json={"model": "big", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    unsampled_upstream = fake_upstream.headers[0]["traceparent"]
    gw.stop()
    assert {s.trace_id for s in receiver.spans} == {CLIENT_TRACE}  # ratio 0: only the client's sampled trace
    assert len(receiver.spans) == 2
    assert int(unsampled_upstream[-2:], 16) & 1 == 0  # still propagated upstream, its sampled flag off
