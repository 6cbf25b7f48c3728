"""The provider interface: one wire format per implementation, pooled keep-alive connections.

A provider turns an OpenAI-shaped chat-completions body into an upstream call and answers in OpenAI shape,
whatever its own wire format. It raises only :class:`~tierroute.UpstreamError` subclasses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import aiohttp

from ..config import ProviderSettings
from ..types import Deployment, JSONDict, Usage


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole (non-streamed) answer in OpenAI chat-completion shape, with its token usage."""

    response: JSONDict
    usage: Usage


@runtime_checkable
class Provider(Protocol):
    name: str

    async def complete(self, deployment: Deployment, body: JSONDict) -> Completion:
        """Send ``body`` (OpenAI shape, ``model`` already set to the upstream name) and return the answer."""
        ...

    def stream(self, deployment: Deployment, body: JSONDict) -> AsyncIterator[JSONDict]:
        """Yield OpenAI ``chat.completion.chunk`` dicts; the last one carries ``usage`` when known."""
        ...

    async def aclose(self) -> None: ...


class HTTPProvider:
    """Shared plumbing: one pooled aiohttp session per provider, created inside the running loop."""

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.name = name
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(
                limit=self.settings.max_connections, keepalive_timeout=30, ttl_dns_cache=300, enable_cleanup_closed=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=self.settings.total_timeout_seconds, connect=self.settings.connect_timeout_seconds
                ),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None
