"""The :class:`~.client.HTTPClient` interface over aiohttp's pooled session (proxies supported).

aiohttp inflates gzip/deflate bodies incrementally under its own flow control, and pauses reading a socket
whose unread buffer is full, so the limits here only count bytes: a body past ``max_response_bytes`` or a line
past ``max_event_bytes`` raises :class:`~.client.ResponseTooLarge`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

import aiohttp
from aiohttp.http_exceptions import LineTooLong
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ..config import ProviderSettings
from .client import ResponseTooLarge

KEEPALIVE_SECONDS = 30


class AiohttpResponse:
    __slots__ = ("_resp", "_max_body", "_max_line", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, max_body: int, max_line: int) -> None:
        self._resp = resp
        self._max_body = max_body
        self._max_line = max_line
        self.status: int = resp.status
        self.headers: CIMultiDictProxy[str] = resp.headers

    async def read(self, max_bytes: int | None = None) -> bytes:
        limit = self._max_body if max_bytes is None else max_bytes
        content = self._resp.content
        body = bytearray()
        while chunk := await content.readany():
            body += chunk
            if len(body) > limit:
                raise ResponseTooLarge(f"body exceeds {limit} bytes", body=body, limit=limit)
        return bytes(body)

    async def readline(self, max_bytes: int | None = None) -> bytes:
        limit = self._max_line if max_bytes is None else max_bytes
        try:
            return await self._resp.content.readline(max_line_length=limit)
        except LineTooLong:
            raise ResponseTooLarge(f"a line exceeds {limit} bytes") from None

    def release(self) -> None:
        self._resp.release()


class AiohttpClient:
    def __init__(self, settings: ProviderSettings, *, ssl_context: ssl.SSLContext | None = None,
                 trust_env: bool = False) -> None:
        self._max_body = settings.max_response_bytes
        self._max_line = settings.max_event_bytes
        connector = aiohttp.TCPConnector(limit=settings.max_connections, keepalive_timeout=KEEPALIVE_SECONDS,
                                         ttl_dns_cache=300, enable_cleanup_closed=True,
                                         ssl=ssl_context if ssl_context is not None else True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=settings.total_timeout_seconds, connect=settings.connect_timeout_seconds),
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            trust_env=trust_env,
        )
        # Parsed once per (url, headers object): aiohttp would otherwise parse the URL and copy the headers
        # into a CIMultiDict on every request.
        self._prepared: dict[str, tuple[Mapping[str, str], URL, CIMultiDict[str]]] = {}

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> AiohttpResponse:
        prepared = self._prepared.get(url)
        if prepared is None or prepared[0] is not headers:
            prepared = self._prepared[url] = (headers, URL(url), CIMultiDict(headers))
        resp = await self._session.post(prepared[1], data=body, headers=prepared[2])
        return AiohttpResponse(resp, self._max_body, self._max_line)

    async def aclose(self) -> None:
        if not self._session.closed:
            await self._session.close()
