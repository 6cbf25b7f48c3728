"""A key-less gateway answers this machine's programs, not web pages on other sites (issue 15 item 16).

Against a real key-less ``tierroute serve`` on loopback: a browser's no-preflight POST (``text/plain``, or
no content type at all), a request from another site's page (``Origin``), and a DNS-rebinding request
(``Host: attacker name``) are refused before any upstream call; local clients work as before.
"""

from __future__ import annotations

import http.client

import openai
import orjson
import pytest

from ..conftest import GATEWAY_KEY
from .processes import serve, write_config

BODY = orjson.dumps({"model": "cheap", "messages": [{"role": "user", "content": "spend my money"}]})


@pytest.fixture(scope="module")
def keyless(tmp_path_factory, fake_upstream_server):
    with serve(write_config(tmp_path_factory.mktemp("keyless"), fake_upstream_server.url)) as running:
        yield running


def call(port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    if body is not None:
        conn.putheader("content-length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    data = orjson.loads(resp.read())
    conn.close()
    return resp.status, data


@pytest.mark.parametrize(
    ("headers", "status", "fragment"),
    [
        # <form enctype="text/plain"> or fetch(..., {mode: "no-cors", body: "..."}) from any page: no preflight
        ({"host": "127.0.0.1", "content-type": "text/plain;charset=UTF-8", "origin": "https://evil.example"},
         403, "requests from the web page 'https://evil.example' are refused"),
        ({"host": "127.0.0.1", "content-type": "text/plain;charset=UTF-8"}, 415, "Content-Type: application/json"),
        # fetch with a Blob/ArrayBuffer body sends no content type at all
        ({"host": "127.0.0.1"}, 415, "got none"),
        ({"host": "127.0.0.1", "content-type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        # DNS rebinding: the page's own name now resolves to 127.0.0.1, and the browser says so in Host
        ({"host": "rebind.evil.example:4000", "content-type": "application/json"}, 403, "is not a loopback name"),
        ({"host": "127.0.0.1", "content-type": "application/json", "origin": "null"}, 403, "'null'"),
    ],
)
def test_browser_requests_from_other_sites_are_refused(keyless, fake_upstream, headers, status, fragment):
    got, data = call(keyless.port, "POST", "/v1/chat/completions", headers, BODY)
    assert got == status and fragment in data["error"]["message"], data
    assert "server.api_keys" in data["error"]["message"]
    assert fake_upstream.requests == []  # refused before any money was spent


def test_a_rebinding_page_cannot_read_models_either(keyless):
    got, data = call(keyless.port, "GET", "/v1/models", {"host": "rebind.evil.example:4000"})
    assert got == 403 and "is not a loopback name" in data["error"]["message"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.0.0.2", "app.localhost"])
def test_local_clients_are_answered(keyless, host):
    headers = {"host": f"{host}:{keyless.port}", "content-type": "application/json; charset=utf-8",
               "origin": f"http://{host}:3000"}
    got, data = call(keyless.port, "POST", "/v1/chat/completions", headers, BODY)
    assert got == 200, data


def test_the_openai_sdk_is_answered(keyless):
    client = openai.OpenAI(base_url=f"{keyless.url}/v1", api_key="none", max_retries=0)
    assert client.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "hi"}]).choices


def test_a_gateway_with_keys_leaves_this_to_the_key(keyed_gateway):
    headers = {"host": "gateway.example.com", "content-type": "text/plain", "authorization": f"Bearer {GATEWAY_KEY}"}
    body = orjson.dumps({"model": "small", "messages": [{"role": "user", "content": "hi"}]})
    got, data = call(keyed_gateway.port, "POST", "/v1/chat/completions", headers, body)
    assert got == 200, data
