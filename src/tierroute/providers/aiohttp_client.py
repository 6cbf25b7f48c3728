"""The :class:`~.client.HTTPClient` interface over aiohttp's pooled session (proxies supported)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ..config import ProviderSettings

KEEPALIVE_SECONDS = 30


class AiohttpResponse:
    __slots__ = ("_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status: int = resp.status
        self.headers: CIMultiDictProxy[str] = resp.headers

    async def read(self) -> bytes:
        return await self._resp.read()

    async def readline(self) -> bytes:
        return await self._resp.content.readline()

    def release(self) -> None:
        self._resp.release()


class AiohttpClient:
    def __init__(self, settings: ProviderSettings, *, ssl_context: ssl.SSLContext | None = None,
                 trust_env: bool = False) -> None:
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
        return AiohttpResponse(resp)

    async def aclose(self) -> None:
        if not self._session.closed:
            await self._session.close()
