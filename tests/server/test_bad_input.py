"""Malformed requests get a clear OpenAI-shaped error naming the problem, and the gateway keeps serving."""

from __future__ import annotations

import http.client

import orjson
import pytest

from ..conftest import GATEWAY_KEY


def post(gw, body: bytes, headers: dict[str, str] | None = None, path: str = "/v1/chat/completions"):
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.request("POST", path, body=body, headers={"content-type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, orjson.loads(data) if data else None, resp


def ok_body() -> bytes:
    return orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})


@pytest.mark.parametrize(
    ("body", "status", "fragment", "param"),
    [
        (b"{not json", 400, "not valid JSON", None),
        (b"[1, 2]", 400, "expected a JSON object", None),
        (orjson.dumps({"model": "auto"}), 400, "messages: required field is missing", "messages"),
        (orjson.dumps({"model": "auto", "messages": "hi"}), 400, "messages: expected a non-empty array", "messages"),
        (orjson.dumps({"model": "auto", "messages": []}), 400, "non-empty array", "messages"),
        (orjson.dumps({"model": "auto", "messages": [{"role": "robot", "content": "x"}]}), 400, "messages[0].role", "messages[0].role"),
        (orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": 5}]}), 400, "messages[0].content", "messages[0].content"),
        (orjson.dumps({"model": 7, "messages": [{"role": "user", "content": "x"}]}), 400, "model: expected a non-empty string", "model"),
        (orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}), 400, "max_tokens", "max_tokens"),
        (orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}), 400, "stream: expected a boolean", "stream"),
        (orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": "x"}], "temperature": 9}), 400, "temperature", "temperature"),
        (orjson.dumps({"model": "gpt-nope", "messages": [{"role": "user", "content": "x"}]}), 404, "model 'gpt-nope' not found", "model"),
    ],
)
def test_malformed_requests(gateway, body, status, fragment, param):
    got_status, data, _ = post(gateway, body)
    assert got_status == status
    assert fragment in data["error"]["message"]
    assert data["error"]["param"] == param
    assert set(data["error"]) >= {"message", "type", "param", "code"}
    # and the gateway keeps serving
    assert post(gateway, ok_body())[0] == 200


def deep(levels: int) -> object:
    value: object = "x"
    for _ in range(levels):
        value = {"a": [value]}
    return value


DEEP_1000 = '{"a": [' * 500 + '"x"' + ']}' * 500  # JSON text: orjson cannot encode it, so it is spliced in


@pytest.mark.parametrize(
    ("body", "fragment", "param"),
    [
        # unhashable roles made `role in ROLES` raise TypeError (issue 15 item 13: 218 of 8,151 fuzzed bodies)
        ({"messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role", "messages[0].role"),
        ({"messages": [{"role": {"r": "user"}, "content": "x"}]}, "messages[0].role", "messages[0].role"),
        # depth-1000 nesting made str() of tools / tool_calls raise RecursionError
        ({"messages": [{"role": "user", "content": "x"}], "tools": ["DEEP"]}, "nested more than 254 levels", None),
        ({"messages": [{"role": "assistant", "content": None, "tool_calls": ["DEEP"]},
                       {"role": "user", "content": "x"}]}, "nested more than 254 levels", None),
        # deeper than the upstream encoder takes, in a field the gateway only forwards
        ({"messages": [{"role": "user", "content": "x"}], "metadata": "DEEP"}, "nested more than 254 levels", None),
    ],
)
def test_hostile_shapes_are_400(gateway, body, fragment, param):
    got_status, data, _ = post(gateway, orjson.dumps(body).replace(b'"DEEP"', DEEP_1000.encode()))
    assert got_status == 400, data
    assert fragment in data["error"]["message"] and data["error"]["param"] == param
    assert post(gateway, ok_body())[0] == 200


def test_deep_but_encodable_tools_are_forwarded(gateway, fake_upstream):
    body = {"model": "big", "messages": [{"role": "user", "content": "x"}], "tools": [deep(100)]}
    assert post(gateway, orjson.dumps(body))[0] == 200
    assert fake_upstream.requests[-1]["tools"] == [deep(100)]


def test_oversized_body_is_413(gateway_factory):
    gw = gateway_factory(server={"max_body_bytes": 10_000})
    status, data, _ = post(gw, orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": "x" * 20_000}]}))
    assert status == 413 and "exceeds the limit of 10000 bytes" in data["error"]["message"]
    assert post(gw, ok_body())[0] == 200


def test_missing_and_wrong_auth_are_401(keyed_gateway):
    status, data, _ = post(keyed_gateway, ok_body())
    assert status == 401 and "missing API key" in data["error"]["message"]
    status, data, _ = post(keyed_gateway, ok_body(), {"authorization": "Bearer nope"})
    assert status == 401 and data["error"]["message"] == "invalid API key"
    assert post(keyed_gateway, ok_body(), {"authorization": f"Bearer {GATEWAY_KEY}"})[0] == 200


def test_unknown_route_and_method(gateway):
    status, data, _ = post(gateway, b"{}", path="/v1/nope")
    assert status == 404 and "no route" in data["error"]["message"]
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    conn.request("GET", "/v1/chat/completions")
    assert conn.getresponse().status == 405


def test_health_and_metrics(gateway):
    post(gateway, ok_body())
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    conn.request("GET", "/health")
    health = orjson.loads(conn.getresponse().read())
    assert health["status"] == "ok" and health["models"] == 3 and health["unavailable"] == []
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    text = resp.read().decode()
    assert resp.getheader("content-type").startswith("text/plain")
    assert 'tierroute_requests_total{model="small",status="ok"} 1.0' in text
    assert "tierroute_overhead_seconds_bucket" in text
