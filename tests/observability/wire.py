"""Plain HTTP over loopback for the observability tests (http.client: what a probe or curl would send)."""

from __future__ import annotations

import http.client
from typing import Any
from urllib.parse import urlparse

import orjson


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.content = body

    def json(self) -> Any:
        return orjson.loads(self.content)


def request(method: str, url: str, *, json: Any = None, headers: dict[str, str] | None = None,
            timeout: float = 10) -> Answer:
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        body = orjson.dumps(json) if json is not None else None
        conn.request(method, parsed.path, body=body,
                     headers={**({"content-type": "application/json"} if body else {}), **(headers or {})})
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def post(url: str, **kwargs: Any) -> Answer:
    return request("POST", url, **kwargs)


def get(url: str, **kwargs: Any) -> Answer:
    return request("GET", url, **kwargs)
