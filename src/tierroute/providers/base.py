"""The provider interface: one wire format per implementation, over pooled keep-alive connections.

A provider turns an OpenAI-shaped chat-completions body into an upstream call and answers in OpenAI shape,
whatever its own wire format. It raises only :class:`~tierroute.UpstreamError` subclasses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..config import ProviderSettings
from .client import HTTPClient, open_client
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
    """Shared plumbing: one pooled HTTP client (``client.py``) per provider, created inside the running loop."""

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.name = name
        self.settings = settings
        self._client: HTTPClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def client(self) -> HTTPClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = open_client(self.settings)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None
